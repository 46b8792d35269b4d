import Foundation
import RelayCore

/// The mail flow chart: one stacked bar per hour (delivered, deferred,
/// failed), drawn as inline SVG so it needs no script and no network. Each
/// hour is a `<g class="hour">` carrying its counts in `data-` attributes
/// and a `<title>` tooltip; each non-empty segment is a
/// `<rect class="bar bar-STATUS" data-status data-count>`.
enum DashboardFlowChart {
    /// The hours the chart covers: the current hour and the 23 before it.
    static func window(now: Date) -> (since: Date, until: Date) {
        let currentHour = (now.timeIntervalSince1970 / 3600).rounded(.down) * 3600
        return (Date(timeIntervalSince1970: currentHour - 23 * 3600), Date(timeIntervalSince1970: currentHour + 3600))
    }

    /// Outcomes in stacking order, bottom first, with their legend names.
    static let outcomes: [(name: String, count: @Sendable (RelayFlowHour) -> Int)] = [
        ("delivered", { $0.delivered }),
        ("deferred", { $0.deferred }),
        ("failed", { $0.failed }),
    ]

    /// The axis maximum and grid step: a 1, 2 or 5 times a power of ten step, about four grid lines.
    static func scale(maximum: Int) -> (top: Int, step: Int) {
        guard maximum > 0 else { return (4, 1) }
        let rough = Double(maximum) / 4
        var magnitude = 1
        while Double(magnitude * 10) <= rough { magnitude *= 10 }
        let step = [1, 2, 5, 10].map { $0 * magnitude }.first { Double($0) >= rough } ?? magnitude * 10
        let top = ((maximum + step - 1) / step) * step
        return (top, step)
    }

    static func render(_ hours: [RelayFlowHour]) -> String {
        let width = 960.0, height = 230.0
        let left = 40.0, right = 8.0, top = 12.0, bottom = 26.0
        let plotWidth = width - left - right, plotHeight = height - top - bottom
        let totals = hours.map { $0.delivered + $0.deferred + $0.failed }
        let (axisTop, step) = scale(maximum: totals.max() ?? 0)
        let slot = hours.isEmpty ? plotWidth : plotWidth / Double(hours.count)
        let barWidth = (slot * 0.72).rounded(.down)
        func y(_ value: Int) -> Double { top + plotHeight - plotHeight * Double(value) / Double(axisTop) }
        func number(_ value: Double) -> String { String(format: "%.1f", value) }

        let sums = outcomes.map { outcome in hours.reduce(0) { $0 + outcome.count($1) } }
        let description = zip(outcomes, sums).map { "\($1) \($0.name)" }.joined(separator: ", ")
        var svg = """
            <svg id="flow-chart" class="flow-chart" viewBox="0 0 \(Int(width)) \(Int(height))" role="img" \
            aria-labelledby="flow-chart-title flow-chart-desc" preserveAspectRatio="xMidYMid meet">
            <title id="flow-chart-title">Mail flow per hour, last 24 hours (UTC)</title>
            <desc id="flow-chart-desc">Delivery attempts by outcome: \(description).</desc>

            """
        // Grid lines and their labels.
        for value in stride(from: 0, through: axisTop, by: step) {
            let lineY = number(y(value))
            svg += "<line class=\"grid\" x1=\"\(number(left))\" x2=\"\(number(width - right))\" y1=\"\(lineY)\" y2=\"\(lineY)\"/>"
            svg += "<text class=\"axis axis-y\" x=\"\(number(left - 6))\" y=\"\(lineY)\" text-anchor=\"end\" dominant-baseline=\"middle\">\(value)</text>\n"
        }
        for (index, hour) in hours.enumerated() {
            let slotX = left + slot * Double(index)
            let barX = slotX + (slot - barWidth) / 2
            let label = DashboardFormat.hourLabel(hour.start)
            let end = DashboardFormat.hourLabel(hour.start.addingTimeInterval(3600))
            svg += """
                <g class="hour" data-hour="\(DashboardFormat.iso(hour.start))" data-delivered="\(hour.delivered)" \
                data-deferred="\(hour.deferred)" data-failed="\(hour.failed)">\
                <title>\(label)–\(end) UTC: \(hour.delivered) delivered, \(hour.deferred) deferred, \(hour.failed) failed</title>\
                <rect class="slot" x="\(number(slotX))" y="\(number(top))" width="\(number(slot))" height="\(number(plotHeight))"/>
                """
            var stacked = 0
            for outcome in outcomes {
                let count = outcome.count(hour)
                guard count > 0 else { continue }
                let segmentTop = y(stacked + count), segmentBottom = y(stacked)
                svg += """
                    <rect class="bar bar-\(outcome.name)" data-status="\(outcome.name)" data-count="\(count)" \
                    x="\(number(barX))" y="\(number(segmentTop))" width="\(number(barWidth))" height="\(number(segmentBottom - segmentTop))">\
                    <title>\(label) UTC: \(count) \(outcome.name)</title></rect>
                    """
                stacked += count
            }
            // Every third hour is labelled; 24 labels would overlap on a phone.
            if DashboardFormat.hour(hour.start) % 3 == 0 {
                svg += "<text class=\"axis axis-x\" x=\"\(number(slotX + slot / 2))\" y=\"\(number(height - 8))\" text-anchor=\"middle\">\(label)</text>"
            }
            svg += "</g>\n"
        }
        svg += "<line class=\"baseline\" x1=\"\(number(left))\" x2=\"\(number(width - right))\" y1=\"\(number(y(0)))\" y2=\"\(number(y(0)))\"/>\n"
        if totals.allSatisfy({ $0 == 0 }) {
            svg += "<text class=\"empty\" x=\"\(number(left + plotWidth / 2))\" y=\"\(number(top + plotHeight / 2))\" text-anchor=\"middle\">No delivery attempts in the last 24 hours</text>\n"
        }
        svg += "</svg>\n"

        var legend = "<ul class=\"legend\" id=\"flow-legend\">"
        for (outcome, sum) in zip(outcomes, sums) {
            legend += "<li data-status=\"\(outcome.name)\"><span class=\"swatch swatch-\(outcome.name)\"></span>\(outcome.name.capitalized) <strong class=\"legend-count\">\(sum)</strong></li>"
        }
        legend += "</ul>\n"
        return svg + legend
    }
}
