import Foundation

/// Where a secret comes from. The configuration references secrets; it never holds them.
///
/// Every secret key `X_file` also has an `X_env` form naming an environment
/// variable (PRODUCT.md: "Secrets are read from files or environment
/// variables, never required inline").
public enum RelaySecretSource: Sendable, Hashable, CustomStringConvertible {
    /// The secret is the content of this file (one trailing newline is not part of it).
    case file(String)
    /// The secret is the value of this environment variable.
    case environment(String)

    /// `file /path` or `environment NAME`: a reference, not the secret, so safe to log.
    public var description: String {
        switch self {
        case .file(let path): "file \(path)"
        case .environment(let name): "environment variable \(name)"
        }
    }
}

/// `storage.url`.
public enum RelayStorageLocation: Sendable, Hashable, CustomStringConvertible {
    /// `sqlite:PATH` (also `sqlite://PATH`, so `sqlite:///var/lib/x` is `/var/lib/x`).
    case sqlite(path: String)
    /// `postgres://...` or `postgresql://...`, kept as written.
    case postgres(url: String)

    /// Parses `sqlite:PATH` or `postgres://...`; nil for anything else.
    public init?(parsing text: String) {
        if text.hasPrefix("sqlite:") {
            var path = text.dropFirst("sqlite:".count)
            if path.hasPrefix("//") { path = path.dropFirst(2) }
            guard !path.isEmpty else { return nil }
            self = .sqlite(path: String(path))
        } else if text.hasPrefix("postgres://") || text.hasPrefix("postgresql://") {
            guard text.split(separator: "/", omittingEmptySubsequences: true).count >= 2 else { return nil }
            self = .postgres(url: text)
        } else {
            return nil
        }
    }

    /// The URL as written in the configuration (may hold an inline password: see ``RelayConfiguration/renderRedacted()``).
    public var description: String {
        switch self {
        case .sqlite(let path): "sqlite:\(path)"
        case .postgres(let url): url
        }
    }
}

/// A `host:port` pair: listener, admin and upstream addresses.
///
/// IPv6 hosts are written in brackets, `[::1]:25`, as in RFC 3986 §3.2.2.
public struct RelayEndpoint: Sendable, Hashable, CustomStringConvertible {
    /// Host name or IP address, without brackets.
    public var host: String
    public var port: Int

    public init(host: String, port: Int) {
        self.host = host
        self.port = port
    }

    /// Parses `host:port`, `1.2.3.4:port` or `[v6]:port`. Port 0 is accepted (pick a free port).
    public init?(parsing text: String) {
        let host: Substring
        let portText: Substring
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]") else { return nil }
            host = text[text.index(after: text.startIndex)..<close]
            let rest = text[text.index(after: close)...]
            guard rest.hasPrefix(":") else { return nil }
            portText = rest.dropFirst()
            guard RelayIPAddress(parsing: String(host))?.family == .v6 else { return nil }
        } else {
            guard let colon = text.lastIndex(of: ":") else { return nil }
            host = text[..<colon]
            portText = text[text.index(after: colon)...]
            // An unbracketed IPv6 address is ambiguous with the port: refuse it.
            guard !host.contains(":") else { return nil }
            guard RelayIPAddress(parsing: String(host)) != nil || Self.isHostName(host) else { return nil }
        }
        guard !host.isEmpty, !portText.isEmpty, portText.utf8.count <= 5,
              portText.allSatisfy({ $0.isASCII && $0.isNumber }),
              let port = Int(portText), (0...65_535).contains(port)
        else { return nil }
        self.host = String(host)
        self.port = port
    }

    /// Whether the host is loopback: `localhost`, 127.0.0.0/8 or ::1.
    public var isLoopback: Bool {
        let lower = host.lowercased()
        if lower == "localhost" || lower == "localhost." || lower.hasSuffix(".localhost") { return true }
        return RelayIPAddress(parsing: host)?.isLoopback ?? false
    }

    public var description: String {
        host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
    }

    /// A DNS host name: labels of letters, digits and hyphens (RFC 1123 §2.1).
    static func isHostName(_ text: Substring) -> Bool {
        let name = text.hasSuffix(".") ? text.dropLast() : text
        guard !name.isEmpty, name.utf8.count <= 253 else { return false }
        for label in name.split(separator: ".", omittingEmptySubsequences: false) {
            guard !label.isEmpty, label.utf8.count <= 63, label.first != "-", label.last != "-",
                  label.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-" || $0 == "_") })
            else { return false }
        }
        return true
    }
}

/// `clients[].rate_limit`: `120/min`, also `/s` and `/h`.
public struct RelayRateLimit: Sendable, Hashable, CustomStringConvertible {
    /// Messages allowed per ``period``.
    public var count: Int
    /// The window, in seconds: 1, 60 or 3600.
    public var period: TimeInterval

    public init(count: Int, period: TimeInterval) {
        self.count = count
        self.period = period
    }

    /// Parses `N/s`, `N/sec`, `N/second`, `N/min`, `N/minute`, `N/h`, `N/hour` (spaces allowed around `/`).
    public init?(parsing text: String) {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 2 else { return nil }
        let countText = parts[0].trimmingCharacters(in: .whitespaces)
        let unit = parts[1].trimmingCharacters(in: .whitespaces).lowercased()
        guard !countText.isEmpty, countText.allSatisfy({ $0.isASCII && $0.isNumber }),
              let count = Int(countText), count > 0 else { return nil }
        switch unit {
        case "s", "sec", "second": period = 1
        case "m", "min", "minute": period = 60
        case "h", "hour": period = 3600
        default: return nil
        }
        self.count = count
    }

    public var description: String {
        switch period {
        case 1: "\(count)/s"
        case 3600: "\(count)/h"
        default: "\(count)/min"
        }
    }
}

/// The scalar syntaxes of the configuration file: durations and sizes.
public enum RelayConfigurationSyntax {
    /// Parses a duration: `30s`, `5m`, `1h`, `5d`; a plain number is seconds.
    /// Combinations (`1h30m`) are not accepted. Nil when malformed or negative.
    public static func duration(_ text: String) -> TimeInterval? {
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        guard let last = trimmed.last else { return nil }
        let multiplier: Double
        var digits = Substring(trimmed)
        switch last {
        case "s": multiplier = 1
        case "m": multiplier = 60
        case "h": multiplier = 3600
        case "d": multiplier = 86_400
        case "0"..."9": multiplier = 1
        default: return nil
        }
        if multiplier != 1 || last == "s" { digits = digits.dropLast() }
        digits = Substring(digits.trimmingCharacters(in: .whitespaces))
        guard !digits.isEmpty, digits.utf8.count <= 12, digits.allSatisfy({ $0.isASCII && $0.isNumber }),
              let value = Int(digits) else { return nil }
        return Double(value) * multiplier
    }

    /// Writes a duration in the largest unit that divides it: `300` is `5m`.
    public static func formatDuration(_ seconds: TimeInterval) -> String {
        let whole = Int(seconds.rounded())
        guard whole > 0 else { return "0s" }
        for (unit, size) in [("d", 86_400), ("h", 3600), ("m", 60)] where whole % size == 0 {
            return "\(whole / size)\(unit)"
        }
        return "\(whole)s"
    }

    /// Parses a size in octets: a plain integer is bytes; `KB`, `MB`, `GB`
    /// (also `K`, `KiB`, ...) are binary multiples, so `35MB` is 35 × 1,048,576.
    ///
    /// Binary because Microsoft's "35 MB" and "150 MB" limits are checked
    /// against binary megabytes; being generous by 5 % never rejects a message
    /// Microsoft would take. Nil when malformed.
    public static func size(_ text: String) -> Int? {
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        guard let unitStart = trimmed.firstIndex(where: { !($0.isASCII && $0.isNumber) }) else {
            guard !trimmed.isEmpty, trimmed.utf8.count <= 18 else { return nil }
            return Int(trimmed)
        }
        let digits = trimmed[..<unitStart]
        let unit = trimmed[unitStart...].trimmingCharacters(in: .whitespaces).lowercased()
        guard !digits.isEmpty, digits.utf8.count <= 12, let value = Int(digits) else { return nil }
        let multiplier: Int
        switch unit {
        case "b": multiplier = 1
        case "k", "kb", "kib": multiplier = 1024
        case "m", "mb", "mib": multiplier = 1_048_576
        case "g", "gb", "gib": multiplier = 1_073_741_824
        default: return nil
        }
        let (result, overflow) = value.multipliedReportingOverflow(by: multiplier)
        return overflow ? nil : result
    }

    /// Writes a size in the largest binary unit that divides it: `36700160` is `35MB`.
    public static func formatSize(_ bytes: Int) -> String {
        guard bytes > 0 else { return "0" }
        for (unit, size) in [("GB", 1_073_741_824), ("MB", 1_048_576), ("KB", 1024)] where bytes % size == 0 {
            return "\(bytes / size)\(unit)"
        }
        return "\(bytes)"
    }
}
