// engine-kill-writer ENGINE DIR
//
// The child process of the conformance suite's hard-kill check: opens engine ENGINE at DIR,
// continues after the last batch present, and writes batches (see KillWriterProtocol) with
// sync: true forever, printing "ready N" once open and "ack N" after each write returns. Lines
// go straight to write(2), so an acknowledgement printed is an acknowledgement the parent sees.
// It is meant to be killed with SIGKILL. With "hold-views N" it holds N read views instead.
import EngineAPI
import Engines
#if canImport(Glibc)
import Glibc
#endif

func say(_ line: String) {
    var bytes = Array((line + "\n").utf8)
    var done = 0
    while done < bytes.count {
        let n = bytes.withUnsafeMutableBytes { write(1, $0.baseAddress! + done, $0.count - done) }
        if n < 0 && errno == EINTR { continue }
        if n <= 0 { exit(3) }
        done += n
    }
}

let arguments = CommandLine.arguments
// engine-kill-writer ENGINE DIR hold-views N: open N read views, print "ready", then wait to
// be killed (tests that reader slots of killed processes are not leaked).
if arguments.count == 5 && arguments[3] == "hold-views", let count = Int(arguments[4]) {
    do {
        let engine = try Engines.registry.open(arguments[1], directory: arguments[2])
        let views = try (0..<count).map { _ in try engine.readView() }
        say("ready \(views.count)")
        while true { sleep(60) }
    } catch {
        say("error \(error)")
        exit(1)
    }
}
guard arguments.count == 3 else {
    say("usage: engine-kill-writer ENGINE DIR   (engines: \(Engines.registry.names.joined(separator: ", ")))")
    exit(2)
}
do {
    let engine = try Engines.registry.open(arguments[1], directory: arguments[2])
    var n = try KillWriterProtocol.nextBatchNumber(engine)
    say("ready \(n)")
    while true {
        try engine.write(KillWriterProtocol.batch(n), sync: true)
        say("ack \(n)")
        n += 1
    }
} catch {
    say("error \(error)")
    exit(1)
}
