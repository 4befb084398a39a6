import Foundation

/// Writes `<stem>.json`, `<stem>.md` and `<stem>/*.svg` into a reports folder.
enum ReportWriter {
    static func encoder() -> JSONEncoder {
        let e = JSONEncoder()
        e.outputFormatting = [.prettyPrinted, .sortedKeys]
        e.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        return e
    }

    static func decode(_ path: String) throws -> CompareReport {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw SubprocessError(description: "cannot read \(path)")
        }
        let decoder = JSONDecoder()
        decoder.nonConformingFloatDecodingStrategy = .convertFromString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        do {
            return try decoder.decode(CompareReport.self, from: data)
        } catch let DecodingError.dataCorrupted(context) {
            throw SubprocessError(description: "\(path) is not valid JSON: \(context.debugDescription)")
        } catch let DecodingError.keyNotFound(key, context) {
            throw SubprocessError(description: "\(path) is not a rusd-compare report: missing \"\(key.stringValue)\" at \(context.codingPath.map(\.stringValue).joined(separator: "."))")
        } catch let DecodingError.typeMismatch(_, context) {
            throw SubprocessError(description: "\(path) is not a rusd-compare report: wrong type at \(context.codingPath.map(\.stringValue).joined(separator: ".")): \(context.debugDescription)")
        } catch {
            throw SubprocessError(description: "\(path): \(error)")
        }
    }

    /// Writes the JSON (unless `writeJSON` is false) and the Markdown + charts next to it.
    /// Returns the paths written.
    @discardableResult
    static func write(_ report: CompareReport, directory: String, stem: String, writeJSON: Bool = true) throws -> [String] {
        let fm = FileManager.default
        try fm.createDirectory(atPath: directory, withIntermediateDirectories: true)
        var written: [String] = []
        if writeJSON {
            let jsonPath = "\(directory)/\(stem).json"
            try encoder().encode(report).write(to: URL(fileURLWithPath: jsonPath))
            written.append(jsonPath)
        }
        let markdown = MarkdownReport(report: report, chartFolder: stem)
        let chartDir = "\(directory)/\(stem)"
        try fm.createDirectory(atPath: chartDir, withIntermediateDirectories: true)
        for chart in markdown.chartFiles() {
            let path = "\(chartDir)/\(chart.file)"
            try chart.svg.write(toFile: path, atomically: true, encoding: .utf8)
            written.append(path)
        }
        let mdPath = "\(directory)/\(stem).md"
        try markdown.render().write(toFile: mdPath, atomically: true, encoding: .utf8)
        written.append(mdPath)
        return written
    }
}
