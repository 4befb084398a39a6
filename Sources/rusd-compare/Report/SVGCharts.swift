import Foundation

/// Hand-written SVG charts (no dependencies): line charts and grouped bar charts.
enum SVGCharts {
    static let palette = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf"]
    static let width = 720.0, height = 420.0
    static let left = 80.0, right = 170.0, top = 40.0, bottom = 80.0

    struct Series { var name: String; var points: [(Double, Double)] }

    static func escape(_ s: String) -> String {
        s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
            .replacingOccurrences(of: ">", with: "&gt;")
    }

    private static func header(_ title: String) -> String {
        """
        <svg xmlns="http://www.w3.org/2000/svg" width="\(Int(width))" height="\(Int(height))" viewBox="0 0 \(Int(width)) \(Int(height))" font-family="sans-serif" font-size="12">
        <rect width="100%" height="100%" fill="white"/>
        <text x="\(width / 2)" y="22" text-anchor="middle" font-size="15" font-weight="bold">\(escape(title))</text>

        """
    }

    private static func legend(_ names: [String]) -> String {
        var s = ""
        for (i, name) in names.enumerated() {
            let y = top + 10 + Double(i) * 20
            s += "<rect x=\"\(width - right + 15)\" y=\"\(y - 9)\" width=\"14\" height=\"10\" fill=\"\(palette[i % palette.count])\"/>"
            s += "<text x=\"\(width - right + 35)\" y=\"\(y)\">\(escape(name))</text>\n"
        }
        return s
    }

    /// 1, 2 or 5 times a power of ten, at least `raw`.
    static func niceStep(_ raw: Double) -> Double {
        guard raw > 0 else { return 1 }
        let magnitude = pow(10, floor(log10(raw)))
        for m in [1.0, 2.0, 5.0, 10.0] where m * magnitude >= raw { return m * magnitude }
        return 10 * magnitude
    }

    private static func fmt(_ v: Double) -> String {
        if v >= 1000 { return String(format: "%.0f", v) }
        if v >= 10 { return String(format: "%.0f", v) }
        if v >= 1 { return String(format: "%.1f", v) }
        return String(format: "%.2g", v)
    }

    /// A line chart. `xTicks`/`yTicks` are (value, label) in data units; `logY` plots log10(y).
    static func lineChart(title: String, xLabel: String, yLabel: String, series: [Series],
                          xTicks: [(Double, String)], logY: Bool) -> String {
        let plotW = width - left - right, plotH = height - top - bottom
        let xs = series.flatMap { $0.points.map(\.0) } + xTicks.map(\.0)
        let ys = series.flatMap { $0.points.map(\.1) }.filter { !logY || $0 > 0 }
        guard let xMin = xs.min(), let xMax = xs.max(), var yMin = ys.min(), var yMax = ys.max() else {
            return header(title) + "<text x=\"\(width / 2)\" y=\"\(height / 2)\" text-anchor=\"middle\">no data</text></svg>\n"
        }
        if logY {
            yMin = pow(10, floor(log10(yMin))); yMax = pow(10, ceil(log10(yMax)))
        } else {
            yMin = 0; yMax = niceStep(yMax * 1.05 / 5) * 5
        }
        if yMax <= yMin { yMax = yMin + 1 }
        func px(_ x: Double) -> Double { left + (xMax > xMin ? (x - xMin) / (xMax - xMin) : 0.5) * plotW }
        func py(_ y: Double) -> Double {
            let f = logY ? (log10(max(y, yMin)) - log10(yMin)) / (log10(yMax) - log10(yMin)) : (y - yMin) / (yMax - yMin)
            return top + plotH - f * plotH
        }
        var s = header(title)
        s += "<rect x=\"\(left)\" y=\"\(top)\" width=\"\(plotW)\" height=\"\(plotH)\" fill=\"none\" stroke=\"#999\"/>\n"
        var yTicks: [Double] = []
        if logY {
            var v = yMin
            while v <= yMax * 1.0001 { yTicks.append(v); v *= 10 }
        } else {
            yTicks = (0...5).map { yMin + Double($0) * (yMax - yMin) / 5 }
        }
        for v in yTicks {
            s += "<line x1=\"\(left)\" x2=\"\(left + plotW)\" y1=\"\(py(v))\" y2=\"\(py(v))\" stroke=\"#eee\"/>"
            s += "<text x=\"\(left - 6)\" y=\"\(py(v) + 4)\" text-anchor=\"end\">\(fmt(v))</text>\n"
        }
        for (v, label) in xTicks {
            s += "<line x1=\"\(px(v))\" x2=\"\(px(v))\" y1=\"\(top)\" y2=\"\(top + plotH)\" stroke=\"#eee\"/>"
            s += "<text x=\"\(px(v))\" y=\"\(top + plotH + 16)\" text-anchor=\"middle\">\(escape(label))</text>\n"
        }
        s += "<text x=\"\(left + plotW / 2)\" y=\"\(height - 15)\" text-anchor=\"middle\">\(escape(xLabel))</text>\n"
        s += "<text transform=\"translate(18,\(top + plotH / 2)) rotate(-90)\" text-anchor=\"middle\">\(escape(yLabel))</text>\n"
        for (i, serie) in series.enumerated() where !serie.points.isEmpty {
            let color = palette[i % palette.count]
            let path = serie.points.map { String(format: "%.1f,%.1f", px($0.0), py($0.1)) }.joined(separator: " ")
            s += "<polyline fill=\"none\" stroke=\"\(color)\" stroke-width=\"2\" points=\"\(path)\"/>\n"
            for p in serie.points {
                s += String(format: "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3\" ", px(p.0), py(p.1)) + "fill=\"\(color)\"/>"
            }
            s += "\n"
        }
        s += legend(series.map(\.name))
        return s + "</svg>\n"
    }

    /// A grouped bar chart: one group per category, one bar per series (nil = missing).
    static func barChart(title: String, yLabel: String, categories: [String], series: [(String, [Double?])]) -> String {
        let plotW = width - left - right, plotH = height - top - bottom
        let values = series.flatMap { $0.1.compactMap { $0 } }
        guard let maxValue = values.max(), maxValue > 0, !categories.isEmpty else {
            return header(title) + "<text x=\"\(width / 2)\" y=\"\(height / 2)\" text-anchor=\"middle\">no data</text></svg>\n"
        }
        let yMax = niceStep(maxValue * 1.15 / 5) * 5
        func py(_ y: Double) -> Double { top + plotH - y / yMax * plotH }
        var s = header(title)
        s += "<rect x=\"\(left)\" y=\"\(top)\" width=\"\(plotW)\" height=\"\(plotH)\" fill=\"none\" stroke=\"#999\"/>\n"
        for i in 0...5 {
            let v = Double(i) * yMax / 5
            s += "<line x1=\"\(left)\" x2=\"\(left + plotW)\" y1=\"\(py(v))\" y2=\"\(py(v))\" stroke=\"#eee\"/>"
            s += "<text x=\"\(left - 6)\" y=\"\(py(v) + 4)\" text-anchor=\"end\">\(fmt(v))</text>\n"
        }
        let groupW = plotW / Double(categories.count)
        let barW = groupW * 0.8 / Double(max(1, series.count))
        for (c, category) in categories.enumerated() {
            let gx = left + Double(c) * groupW + groupW * 0.1
            for (i, (_, vals)) in series.enumerated() {
                guard c < vals.count, let v = vals[c] else { continue }
                let x = gx + Double(i) * barW
                s += String(format: "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" ",
                            x, py(v), max(1, barW - 2), top + plotH - py(v)) + "fill=\"\(palette[i % palette.count])\"/>"
                s += String(format: "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\" font-size=\"10\">",
                            x + barW / 2, py(v) - 3) + fmt(v) + "</text>\n"
            }
            let lx = gx + groupW * 0.4, ly = top + plotH + 14
            s += "<text transform=\"translate(\(lx),\(ly)) rotate(-25)\" text-anchor=\"end\">\(escape(category))</text>\n"
        }
        s += "<text transform=\"translate(18,\(top + plotH / 2)) rotate(-90)\" text-anchor=\"middle\">\(escape(yLabel))</text>\n"
        s += legend(series.map(\.0))
        return s + "</svg>\n"
    }
}
