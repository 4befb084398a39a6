import Foundation
import ArgumentParser

@main
struct RusdCompare: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rusd-compare",
        abstract: "Benchmark rusd's engines and etcd side by side and write a report.",
        discussion: """
        Starts rusd once per engine and a real etcd (fresh data dir, free loopback ports each run), \
        plus any external endpoint, runs the selected workloads with targets interleaved round by \
        round, and writes reports/YYYY-MM-DD-<host>.{md,json} with SVG charts.
        """,
        subcommands: [RunCommand.self, ReportCommand.self, ListCommand.self, WatchSinkCommand.self],
        defaultSubcommand: nil)
}

struct ListCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "list", abstract: "List the workloads.")

    func run() throws {
        for w in WorkloadCatalog.all {
            let client = w.needsPersistentClient ? "client " : "etcdctl"
            print("\(w.name.padding(toLength: 14, withPad: " ", startingAt: 0)) [\(client)] \(w.summary)")
        }
    }
}

struct ReportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "report",
                                                    abstract: "Re-render the Markdown and charts of a JSON report without re-running.")
    @Argument(help: "A JSON report written by `rusd-compare run`.")
    var file: String

    @Option(help: "Folder for the .md and charts (default: next to the JSON).")
    var out: String?

    func run() throws {
        let report = try ReportWriter.decode(file)
        let url = URL(fileURLWithPath: file)
        let stem = url.deletingPathExtension().lastPathComponent
        let dir = out ?? url.deletingLastPathComponent().path
        let written = try ReportWriter.write(report, directory: dir, stem: stem, writeJSON: out != nil)
        for path in written { print(path) }
    }
}

