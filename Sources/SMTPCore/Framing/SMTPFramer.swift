import NIOCore
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Problems found in message content. The content is read to its end
/// regardless, so the client sees one clear reply and the session stays in step.
public struct SMTPContentViolations: OptionSet, Hashable, Sendable {
    public let rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }

    /// A LF not preceded by CR: the root of SMTP smuggling, never a line end here.
    public static let bareLineFeed = SMTPContentViolations(rawValue: 1 << 0)
    /// A CR not followed by LF.
    public static let bareCarriageReturn = SMTPContentViolations(rawValue: 1 << 1)
    public static let nul = SMTPContentViolations(rawValue: 1 << 2)
    public static let lineTooLong = SMTPContentViolations(rawValue: 1 << 3)
}

/// What the framer found in the input.
public enum SMTPFrame: Hashable, Sendable {
    /// A command or AUTH line, without its CRLF.
    case line(ByteBuffer)
    /// A line that broke the framing rules; it has been skipped up to its CRLF.
    case badLine(SMTPLineProblem)
    /// Message content, dot-unstuffed for DATA, raw for BDAT.
    case content(ByteBuffer)
    /// DATA ended at CRLF.CRLF.
    case dataEnd(SMTPContentViolations)
    /// The octets announced by a BDAT command have all arrived.
    case chunkEnd(SMTPContentViolations)
}

public enum SMTPLineProblem: Hashable, Sendable {
    case tooLong
    case bareLineFeed
    case bareCarriageReturn
    case nul
}

/// Splits the client's byte stream into frames according to the session's mode.
///
/// Hand-written because it is the SMTP protocol itself: no library frames
/// SMTP. Bare LF and bare CR are never line ends, in commands or in content;
/// DATA ends only at CRLF.CRLF (RFC 5321 §4.1.1.4, and the SMTP smuggling
/// advisories of 2023).
public struct SMTPFramer: Sendable {
    public enum Mode: Hashable, Sendable {
        case command
        case authResponse
        case data
        case bdat(remaining: Int)
    }

    public private(set) var mode: Mode = .command
    private let limits: SMTPServerLimits

    // Line mode state: where scanning resumes, and what is wrong with the line so far.
    private var lineScanOffset = 0
    private var lineProblem: SMTPLineProblem?
    private var lineTruncated = false

    // Content state, carried across chunks.
    private enum ContentState { case lineStart, inLine, carriageReturn, dotAtLineStart, dotCarriageReturn }
    private var contentState = ContentState.lineStart
    private var contentLineLength = 0
    private var violations: SMTPContentViolations = []
    private var lastBDATByteWasCR = false
    private var pendingDataEnd: SMTPContentViolations?

    public init(limits: SMTPServerLimits) {
        self.limits = limits
    }

    /// In a line mode: part of a line was read (and dropped, for one too long) without its end yet.
    /// With the bytes still buffered, this tells whether a command is under way.
    public var hasPartialLine: Bool {
        lineTruncated || lineScanOffset > 0 || lineProblem != nil
    }

    /// Switches mode. DATA content state restarts; BDAT state runs on across
    /// the chunks of one message until `finishBDATMessage()`.
    public mutating func setMode(_ newMode: Mode) {
        if case .data = newMode {
            contentState = .lineStart
            contentLineLength = 0
            violations = []
        }
        lineScanOffset = 0
        mode = newMode
    }

    /// The next frame, or nil when more input is needed.
    public mutating func next(_ input: inout ByteBuffer) -> SMTPFrame? {
        if let end = pendingDataEnd {
            pendingDataEnd = nil
            return .dataEnd(end)
        }
        switch mode {
        case .command:
            return nextLine(&input, limit: limits.maxCommandLineLength)
        case .authResponse:
            return nextLine(&input, limit: limits.maxAuthLineLength)
        case .data:
            return nextDataContent(&input)
        case .bdat(let remaining):
            return nextBDATContent(&input, remaining: remaining)
        }
    }

    // MARK: Lines

    private mutating func nextLine(_ input: inout ByteBuffer, limit: Int) -> SMTPFrame? {
        var position = lineScanOffset
        var lineEnd: Int?
        var problem = lineProblem
        input.withUnsafeReadableBytes { bytes in
            while position < bytes.count {
                let byte = bytes[position]
                if byte == UInt8(ascii: "\r") {
                    // A CR at the end of the input may yet be followed by its LF.
                    guard position + 1 < bytes.count else { break }
                    if bytes[position + 1] == UInt8(ascii: "\n") {
                        lineEnd = position
                        break
                    }
                    problem = problem ?? .bareCarriageReturn
                } else if byte == UInt8(ascii: "\n") {
                    problem = problem ?? .bareLineFeed
                } else if byte == 0 {
                    problem = problem ?? .nul
                }
                position += 1
            }
        }
        if let lineEnd {
            let tooLong = lineTruncated || lineEnd + 2 > limit
            let found = problem ?? (tooLong ? .tooLong : nil)
            lineProblem = nil
            lineTruncated = false
            lineScanOffset = 0
            if let found {
                input.moveReaderIndex(forwardBy: lineEnd + 2)
                return .badLine(found)
            }
            let line = input.readSlice(length: lineEnd)!
            input.moveReaderIndex(forwardBy: 2)
            return .line(line)
        }
        lineProblem = problem
        if position > limit {
            // Too long with no end in sight: drop what was scanned so memory stays bounded.
            input.moveReaderIndex(forwardBy: position)
            lineScanOffset = 0
            lineTruncated = true
        } else {
            lineScanOffset = position
        }
        return nil
    }

    // MARK: DATA

    private mutating func nextDataContent(_ input: inout ByteBuffer) -> SMTPFrame? {
        guard input.readableBytes > 0 else { return nil }
        var output = ByteBuffer()
        output.reserveCapacity(input.readableBytes + 2)
        var consumed = 0
        var ended = false
        let maxLine = limits.maxTextLineLength
        input.withUnsafeReadableBytes { bytes in
            var state = contentState
            var lineLength = contentLineLength
            var found = violations
            var i = 0
            let count = bytes.count
            while i < count {
                if state == .inLine {
                    // Fast path: copy the run of ordinary octets up to the next CR, LF or NUL in one go.
                    let run = Self.ordinaryRun(bytes, from: i)
                    if run > 0 {
                        output.writeBytes(UnsafeRawBufferPointer(rebasing: bytes[i..<(i + run)]))
                        lineLength += run
                        if lineLength > maxLine { found.insert(.lineTooLong) }
                        i += run
                        if i == count { break }
                    }
                }
                let byte = bytes[i]
                i += 1
                switch state {
                case .lineStart:
                    lineLength = 1
                    if byte == UInt8(ascii: ".") {
                        state = .dotAtLineStart
                        continue
                    }
                    state = .inLine
                    Self.contentByte(byte, state: &state, output: &output, found: &found)
                case .dotAtLineStart:
                    lineLength += 1
                    if byte == UInt8(ascii: "\r") {
                        state = .dotCarriageReturn
                    } else {
                        // RFC 5321 §4.5.2: the leading dot was stuffing; drop it.
                        state = .inLine
                        Self.contentByte(byte, state: &state, output: &output, found: &found)
                    }
                case .dotCarriageReturn:
                    if byte == UInt8(ascii: "\n") {
                        ended = true
                    } else {
                        // ".<CR>x": not the terminator; a bare CR.
                        found.insert(.bareCarriageReturn)
                        output.writeInteger(UInt8(ascii: "\r"))
                        lineLength += 1
                        state = .inLine
                        Self.contentByte(byte, state: &state, output: &output, found: &found)
                    }
                case .inLine:
                    lineLength += 1
                    Self.contentByte(byte, state: &state, output: &output, found: &found)
                case .carriageReturn:
                    if byte == UInt8(ascii: "\n") {
                        output.writeInteger(UInt8(ascii: "\r"))
                        output.writeInteger(UInt8(ascii: "\n"))
                        lineLength += 1
                        if lineLength > maxLine { found.insert(.lineTooLong) }
                        state = .lineStart
                        lineLength = 0
                    } else {
                        found.insert(.bareCarriageReturn)
                        output.writeInteger(UInt8(ascii: "\r"))
                        lineLength += 1
                        state = .inLine
                        Self.contentByte(byte, state: &state, output: &output, found: &found)
                    }
                }
                if ended { break }
                if lineLength > maxLine { found.insert(.lineTooLong) }
            }
            consumed = i
            contentState = state
            contentLineLength = lineLength
            violations = found
        }
        input.moveReaderIndex(forwardBy: consumed)
        if ended {
            let found = violations
            contentState = .lineStart
            mode = .command
            lineScanOffset = 0
            if output.readableBytes > 0 {
                // Hand the last content over first; the end comes on the next call.
                pendingDataEnd = found
                return .content(output)
            }
            return .dataEnd(found)
        }
        return output.readableBytes > 0 ? .content(output) : nil
    }

    /// How many octets from `start` are neither CR, LF nor NUL (memchr: this is the hot loop of every message).
    private static func ordinaryRun(_ bytes: UnsafeRawBufferPointer, from start: Int) -> Int {
        guard let base = bytes.baseAddress, start < bytes.count else { return 0 }
        let pointer = base + start
        var limit = bytes.count - start
        if let found = memchr(pointer, 13, limit) { limit = UnsafeRawPointer(found) - pointer }
        if let found = memchr(pointer, 10, limit) { limit = UnsafeRawPointer(found) - pointer }
        if let found = memchr(pointer, 0, limit) { limit = UnsafeRawPointer(found) - pointer }
        return limit
    }

    @inline(__always)
    private static func contentByte(_ byte: UInt8, state: inout ContentState, output: inout ByteBuffer, found: inout SMTPContentViolations) {
        switch byte {
        case UInt8(ascii: "\r"):
            state = .carriageReturn
        case UInt8(ascii: "\n"):
            found.insert(.bareLineFeed)
            output.writeInteger(byte)
        case 0:
            found.insert(.nul)
            output.writeInteger(byte)
        default:
            output.writeInteger(byte)
        }
    }

    // MARK: BDAT

    private mutating func nextBDATContent(_ input: inout ByteBuffer, remaining: Int) -> SMTPFrame? {
        if remaining == 0 {
            mode = .command
            lineScanOffset = 0
            return .chunkEnd(violations)
        }
        guard input.readableBytes > 0 else { return nil }
        let take = min(remaining, input.readableBytes)
        let chunk = input.readSlice(length: take)!
        // BDAT content is not dot-stuffed, but line ends follow the same rules as DATA.
        var lastWasCR = lastBDATByteWasCR
        var found = violations
        var lineLength = contentLineLength
        let maxLine = limits.maxTextLineLength
        chunk.withUnsafeReadableBytes { bytes in
            for byte in bytes {
                lineLength += 1
                if byte == UInt8(ascii: "\n") {
                    if !lastWasCR { found.insert(.bareLineFeed) }
                    if lineLength > maxLine { found.insert(.lineTooLong) }
                    lineLength = 0
                } else if lastWasCR {
                    found.insert(.bareCarriageReturn)
                }
                if byte == 0 { found.insert(.nul) }
                lastWasCR = byte == UInt8(ascii: "\r")
            }
        }
        lastBDATByteWasCR = lastWasCR
        violations = found
        contentLineLength = lineLength
        mode = .bdat(remaining: remaining - take)
        return .content(chunk)
    }

    /// Ends a BDAT message (after LAST, or on RSET): returns what its chunks
    /// violated, a CR dangling at the very end counting as a bare CR, and
    /// starts afresh for the next message.
    @discardableResult
    public mutating func finishBDATMessage() -> SMTPContentViolations {
        var found = violations
        if lastBDATByteWasCR { found.insert(.bareCarriageReturn) }
        violations = []
        lastBDATByteWasCR = false
        contentLineLength = 0
        return found
    }
}
