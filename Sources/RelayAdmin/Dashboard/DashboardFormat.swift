import Foundation

/// How the dashboard writes times, durations and sizes. Times are UTC: the
/// server cannot know the reader's zone, and UTC matches the logs and the
/// trace in Microsoft 365's admin centre.
enum DashboardFormat {
    private static let utc: Calendar = {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "UTC")!
        return calendar
    }()

    private static func components(_ date: Date) -> DateComponents {
        utc.dateComponents([.year, .month, .day, .hour, .minute, .second], from: date)
    }

    private static func twoDigits(_ value: Int?) -> String {
        let value = value ?? 0
        return value < 10 ? "0\(value)" : "\(value)"
    }

    /// `2026-01-15T14:03:07Z`, for `datetime` and `data-` attributes.
    static func iso(_ date: Date) -> String {
        let c = components(date)
        return "\(c.year ?? 0)-\(twoDigits(c.month))-\(twoDigits(c.day))T\(twoDigits(c.hour)):\(twoDigits(c.minute)):\(twoDigits(c.second))Z"
    }

    /// `2026-01-15 14:03:07 UTC`, for people.
    static func timestamp(_ date: Date) -> String {
        let c = components(date)
        return "\(c.year ?? 0)-\(twoDigits(c.month))-\(twoDigits(c.day)) \(twoDigits(c.hour)):\(twoDigits(c.minute)):\(twoDigits(c.second)) UTC"
    }

    /// `14:00`, the chart's hour label.
    static func hourLabel(_ date: Date) -> String {
        let c = components(date)
        return "\(twoDigits(c.hour)):\(twoDigits(c.minute))"
    }

    /// The UTC hour of `date`, 0...23.
    static func hour(_ date: Date) -> Int { components(date).hour ?? 0 }

    /// `45 s`, `12 min`, `3 h 5 min`, `2 d 4 h`.
    static func duration(_ seconds: TimeInterval) -> String {
        let total = Int(abs(seconds).rounded())
        switch total {
        case ..<60: return "\(total) s"
        case ..<3600: return "\(total / 60) min"
        case ..<86_400:
            let minutes = (total % 3600) / 60
            return minutes == 0 ? "\(total / 3600) h" : "\(total / 3600) h \(minutes) min"
        default:
            let hours = (total % 86_400) / 3600
            return hours == 0 ? "\(total / 86_400) d" : "\(total / 86_400) d \(hours) h"
        }
    }

    /// `in 5 min` or `3 h ago`.
    static func relative(_ date: Date, now: Date) -> String {
        let seconds = date.timeIntervalSince(now)
        if abs(seconds) < 1 { return "now" }
        return seconds > 0 ? "in \(duration(seconds))" : "\(duration(seconds)) ago"
    }

    /// A `<time>` element: the UTC time, with the distance from now as its tooltip.
    static func time(_ date: Date, now: Date) -> String {
        "<time datetime=\"\(iso(date))\" title=\"\(relative(date, now: now))\">\(timestamp(date))</time>"
    }

    /// A `<time>` element showing the distance from now, with the UTC time as its tooltip.
    static func relativeTime(_ date: Date, now: Date) -> String {
        "<time datetime=\"\(iso(date))\" title=\"\(timestamp(date))\">\(relative(date, now: now))</time>"
    }

    /// `812 B`, `14.2 KB`, `3.1 MB`.
    static func size(_ bytes: Int) -> String {
        switch bytes {
        case ..<1024: return "\(bytes) B"
        case ..<(1024 * 1024): return oneDecimal(Double(bytes) / 1024) + " KB"
        default: return oneDecimal(Double(bytes) / (1024 * 1024)) + " MB"
        }
    }

    private static func oneDecimal(_ value: Double) -> String {
        let tenths = Int((value * 10).rounded())
        return "\(tenths / 10).\(tenths % 10)"
    }
}
