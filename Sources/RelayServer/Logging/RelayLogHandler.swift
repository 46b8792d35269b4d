import Foundation
import Logging
import RelayCore
import Synchronization

/// Log lines as JSON objects or logfmt pairs, one per line on standard error
/// (`logging.format`), for log shippers that parse rather than read.
///
/// Keys: `ts` (ISO 8601, UTC, milliseconds), `level`, `logger`, `msg`, then
/// the metadata's keys in sorted order (`queue_id` on every line about a
/// message). Values are the metadata's text; nested metadata becomes JSON.
public struct RelayLogHandler: LogHandler {
    public let format: RelayConfiguration.Logging.Format
    public let label: String
    public var logLevel: Logger.Level
    public var metadata: Logger.Metadata = [:]
    public var metadataProvider: Logger.MetadataProvider?
    private let output: @Sendable (String) -> Void

    /// - Parameter output: receives each finished line, newline included; standard error by default.
    public init(
        label: String, format: RelayConfiguration.Logging.Format, level: Logger.Level,
        output: @escaping @Sendable (String) -> Void = RelayLogHandler.standardError
    ) {
        self.label = label
        self.format = format
        self.logLevel = level
        self.output = output
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var merged = metadata
        if let provided = metadataProvider?.get() { merged.merge(provided) { _, new in new } }
        if let extra = event.metadata { merged.merge(extra) { _, new in new } }
        let fields: [(String, String)] = [
            ("ts", Self.timestamp(Date())),
            ("level", event.level.rawValue),
            ("logger", label),
            ("msg", event.message.description),
        ] + merged.keys.sorted().map { ($0, Self.text(merged[$0]!)) }
        output(Self.render(fields, as: format) + "\n")
    }

    /// One line without its newline.
    static func render(_ fields: [(String, String)], as format: RelayConfiguration.Logging.Format) -> String {
        switch format {
        case .json:
            return "{" + fields.map { "\(jsonString($0.0)):\(jsonString($0.1))" }.joined(separator: ",") + "}"
        case .logfmt:
            return fields.map { "\(logfmtKey($0.0))=\(logfmtValue($0.1))" }.joined(separator: " ")
        case .text:
            return fields.map { "\($0.0)=\($0.1)" }.joined(separator: " ")
        }
    }

    private static func text(_ value: Logger.Metadata.Value) -> String {
        switch value {
        case .string(let text): text
        case .stringConvertible(let value): value.description
        case .array, .dictionary: value.description
        }
    }

    private static func timestamp(_ date: Date) -> String {
        date.formatted(Date.ISO8601FormatStyle(includingFractionalSeconds: true, timeZone: .gmt))
    }

    /// JSON string literal (RFC 8259 §7): quotes, backslash and control characters escaped.
    static func jsonString(_ text: String) -> String {
        var result = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": result += "\\\""
            case "\\": result += "\\\\"
            case "\n": result += "\\n"
            case "\r": result += "\\r"
            case "\t": result += "\\t"
            case _ where scalar.value < 0x20 || scalar.value == 0x7F || (0x80..<0xA0).contains(scalar.value) || scalar.value == 0x2028 || scalar.value == 0x2029:
                result += String(format: "\\u%04x", scalar.value)
            default: result.unicodeScalars.append(scalar)
            }
        }
        return result + "\""
    }

    /// logfmt has no formal grammar; this follows the common reading (go-logfmt):
    /// keys are bare words, values are bare unless they hold a space, `=`, `"` or a control character.
    static func logfmtKey(_ key: String) -> String {
        let cleaned = key.unicodeScalars.map { scalar -> String in
            scalar.value <= 0x20 || scalar == "=" || scalar == "\"" || scalar.value == 0x7F ? "_" : String(scalar)
        }.joined()
        return cleaned.isEmpty ? "_" : cleaned
    }

    static func logfmtValue(_ value: String) -> String {
        let needsQuotes = value.isEmpty || value.unicodeScalars.contains { $0.value <= 0x20 || $0 == "=" || $0 == "\"" || $0 == "\\" || $0.value == 0x7F }
        return needsQuotes ? jsonString(value) : value
    }

    private static let writeLock = Mutex(())

    /// One `write` per line, under a lock, so that lines from many threads never interleave.
    @Sendable public static func standardError(_ line: String) {
        writeLock.withLock { _ in
            var bytes = Array(line.utf8)
            var offset = 0
            while offset < bytes.count {
                let written = bytes.withUnsafeMutableBytes { buffer in
                    Glibc.write(2, buffer.baseAddress! + offset, buffer.count - offset)
                }
                if written <= 0 {
                    if written < 0 && errno == EINTR { continue }
                    return
                }
                offset += written
            }
        }
    }
}
