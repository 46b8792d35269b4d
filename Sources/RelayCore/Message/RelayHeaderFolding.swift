/// Folds header fields so that no line exceeds 998 octets.
///
/// Folding inserts CRLF before existing whitespace, so the unfolded value is
/// unchanged (RFC 5322 §2.2.3). A line with no whitespace to fold at cannot
/// be made legal without changing its meaning: the caller refuses the message.
/// - SeeAlso: RFC 5322 §2.1.1 (998 octets), §2.2.3 (folding), §3.2.2 (no line of only whitespace)
public enum RelayHeaderFolding {
    /// Octets in a line, CRLF excluded.
    public static let maximumLineLength = 998

    /// Whether any line of `field` (CRLF-terminated lines) is longer than `limit`.
    public static func needsFolding(_ field: some Collection<UInt8>, limit: Int = maximumLineLength) -> Bool {
        var length = 0
        for byte in field {
            if byte == 10 {
                length = 0
            } else if byte != 13 {
                length += 1
                if length > limit { return true }
            }
        }
        return false
    }

    /// `field` (its name, colon, value and line ends) with every line at most
    /// `limit` octets, each ending in CRLF; nil when a line cannot be folded.
    public static func fold(_ field: [UInt8], limit: Int = maximumLineLength) -> [UInt8]? {
        var lines = field.split(separator: 10, omittingEmptySubsequences: false).map { line -> ArraySlice<UInt8> in
            line.last == 13 ? line.dropLast() : line
        }
        // The field's last CRLF leaves an empty piece behind; it is not a line.
        if lines.count > 1, lines.last?.isEmpty == true { lines.removeLast() }
        var output: [UInt8] = []
        output.reserveCapacity(field.count + 16)
        for (index, original) in lines.enumerated() {
            // The first line may only fold after the colon that ends the field name.
            let floor = index == 0 ? (original.firstIndex(of: 58).map { $0 - original.startIndex + 1 } ?? original.count) : 0
            var line = Array(original)
            var minimum = floor
            while line.count > limit {
                guard let cut = foldPoint(line, from: minimum, limit: limit) else { return nil }
                output += line[..<cut]
                output += [13, 10]
                line = Array(line[cut...])
                minimum = 0
            }
            output += line
            output += [13, 10]
        }
        return output
    }

    /// The last whitespace at or before `limit` that has visible text both
    /// before it (from `minimum`) and after it, so neither piece is blank.
    static func foldPoint(_ line: [UInt8], from minimum: Int, limit: Int) -> Int? {
        func isSpace(_ byte: UInt8) -> Bool { byte == 32 || byte == 9 }
        guard let firstVisible = line[min(minimum, line.count)...].firstIndex(where: { !isSpace($0) }),
              let lastVisible = line.lastIndex(where: { !isSpace($0) }) else { return nil }
        var cut = min(limit, line.count - 1)
        while cut > firstVisible {
            if isSpace(line[cut]), cut < lastVisible { return cut }
            cut -= 1
        }
        return nil
    }
}
