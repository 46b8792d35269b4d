// DKIM is written by hand here: no Swift package available to this project
// does DKIM canonicalisation or signing (swift-crypto supplies only the
// hashes and the signature primitives), and the rules are short enough to
// state exactly and pin with RFC tables.

/// The "relaxed" header canonicalisation of one header field.
///
/// Relaxed rather than simple because Microsoft 365 and every hop before the
/// recipient may refold or re-space header fields; relaxed survives that.
/// - SeeAlso: RFC 6376 §3.4.2
public enum DKIMRelaxedHeader {
    /// `name:value` followed by CRLF: the name lower-cased, the field unfolded,
    /// every run of spaces and tabs made one space, and the spaces and tabs at
    /// the end of the value and on either side of the colon removed.
    ///
    /// `field` is the field as it stands in the message, with or without its
    /// final line end. Returns nil when it has no colon.
    public static func canonicalize<Bytes: Collection<UInt8>>(_ field: Bytes) -> [UInt8]? {
        guard let colon = field.firstIndex(of: UInt8(ascii: ":")) else { return nil }
        var output: [UInt8] = []
        output.reserveCapacity(field.count)
        // The name: lower-cased, without the spaces before the colon (obsolete syntax, RFC 5322 §4.5).
        for byte in field[..<colon] where !isWSP(byte) && byte != 13 && byte != 10 {
            output.append(lowercased(byte))
        }
        output.append(UInt8(ascii: ":"))
        // The value: unfold (drop CR and LF), compress WSP, trim both ends.
        var pendingSpace = false
        var started = false
        for byte in field[field.index(after: colon)...] {
            if byte == 13 || byte == 10 { continue }
            if isWSP(byte) {
                pendingSpace = started
                continue
            }
            if pendingSpace { output.append(32) }
            pendingSpace = false
            started = true
            output.append(byte)
        }
        output.append(13)
        output.append(10)
        return output
    }

    /// The lower-cased name of a field (its bytes up to the colon, without WSP), or nil.
    public static func name<Bytes: Collection<UInt8>>(of field: Bytes) -> String? {
        guard let colon = field.firstIndex(of: UInt8(ascii: ":")) else { return nil }
        let bytes = field[..<colon].filter { !isWSP($0) && $0 != 13 && $0 != 10 }.map(lowercased)
        return bytes.isEmpty ? nil : String(decoding: bytes, as: UTF8.self)
    }

    static func isWSP(_ byte: UInt8) -> Bool { byte == 32 || byte == 9 }

    static func lowercased(_ byte: UInt8) -> UInt8 {
        (byte >= 65 && byte <= 90) ? byte + 32 : byte
    }
}

/// The "relaxed" body canonicalisation, one chunk at a time.
///
/// Streaming, with constant state: a message of any size is canonicalised
/// (and hashed, see ``DKIMBodyHasher``) without holding it. What cannot be
/// decided inside a chunk is carried to the next: whitespace not yet known to
/// be inside a line, a CR not yet known to start a line end, and the count of
/// empty lines that are dropped if nothing but empty lines follows them.
/// - SeeAlso: RFC 6376 §3.4.4 (relaxed body), §3.4.3 (empty lines at the end)
public struct DKIMRelaxedBodyCanonicalizer: Sendable {
    /// Spaces or tabs seen in the current line, not yet written (one SP if anything follows).
    private var pendingSpace = false
    /// A CR was the last byte: a line end if LF follows, an ordinary byte otherwise.
    private var pendingCR = false
    /// Empty lines (after canonicalisation) not yet written: dropped if the body ends here.
    private var emptyLines = 0
    /// The current line has content (something other than spaces and tabs).
    private var lineHasContent = false

    public init() {}

    /// Canonicalises `chunk`, appending what is decided to `output`.
    public mutating func update<Bytes: Sequence<UInt8>>(_ chunk: Bytes, into output: inout [UInt8]) {
        for byte in chunk {
            if pendingCR {
                pendingCR = false
                if byte == 10 {
                    endLine(into: &output)
                    continue
                }
                // A CR on its own is an ordinary byte of the line.
                content(13, into: &output)
            }
            switch byte {
            case 13: pendingCR = true
            case 32, 9: pendingSpace = true
            default: content(byte, into: &output)
            }
        }
    }

    /// Ends the body: empty lines at the end are dropped; a last line that
    /// has content but no line end gets a CRLF. An empty body stays empty.
    public mutating func finish(into output: inout [UInt8]) {
        if pendingCR {
            pendingCR = false
            content(13, into: &output)
        }
        // Whitespace at the end of the last line is dropped like at any line end.
        pendingSpace = false
        if lineHasContent {
            output.append(13)
            output.append(10)
            lineHasContent = false
        }
        emptyLines = 0
    }

    private mutating func content(_ byte: UInt8, into output: inout [UInt8]) {
        if !lineHasContent {
            // Empty lines before content are part of the body after all.
            for _ in 0..<emptyLines {
                output.append(13)
                output.append(10)
            }
            emptyLines = 0
            lineHasContent = true
        }
        if pendingSpace {
            output.append(32)
            pendingSpace = false
        }
        output.append(byte)
    }

    private mutating func endLine(into output: inout [UInt8]) {
        // Whitespace at the end of a line is ignored.
        pendingSpace = false
        if lineHasContent {
            output.append(13)
            output.append(10)
            lineHasContent = false
        } else {
            emptyLines += 1
        }
    }
}
