import Foundation

/// How `doctor` prints its rows: a table for people, JSON for programs.
public enum RelayDoctorReport {
    /// A JSON array of row objects with the keys `step`, `action`,
    /// `verification`, `result`, `hint`, in checklist order.
    public static func json(_ rows: [RelayDoctorRow]) -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        guard let data = try? encoder.encode(rows), let text = String(data: data, encoding: .utf8) else { return "[]" }
        return text + "\n"
    }

    /// A table with the columns Step, Action, Verification, Result and Hint,
    /// long cells wrapped at word boundaries to fit `width` columns, and a
    /// summary line. With `colour`, results are coloured (ANSI SGR).
    public static func table(_ rows: [RelayDoctorRow], width: Int = 120, colour: Bool = false) -> String {
        let headers = ["Step", "Action", "Verification", "Result", "Hint"]
        let cells = rows.map { [$0.step, $0.action, $0.verification, $0.result.rawValue.uppercased(), $0.hint] }
        let separator = 2
        // Step and Result keep their natural width; the rest share what is left.
        let stepWidth = max(headers[0].count, cells.map { $0[0].count }.max() ?? 0)
        let resultWidth = 6
        let available = max(36, width - stepWidth - resultWidth - separator * 4)
        let natural = (1...4).filter { $0 != 3 }.map { column in max(headers[column].count, cells.map { $0[column].count }.max() ?? 0) }
        var shares = [available * 35 / 100, available * 40 / 100, available - available * 35 / 100 - available * 40 / 100]
        // Give a column no more than it needs, and pass the rest on.
        var spare = 0
        for index in shares.indices where natural[index] < shares[index] {
            spare += shares[index] - natural[index]
            shares[index] = natural[index]
        }
        for index in shares.indices where natural[index] > shares[index] && spare > 0 {
            let extra = min(spare, natural[index] - shares[index])
            shares[index] += extra
            spare -= extra
        }
        let widths = [stepWidth, max(8, shares[0]), max(12, shares[1]), resultWidth, max(4, shares[2])]

        var lines: [String] = []
        func emit(_ row: [String], result: RelayDoctorRow.Result?) {
            let wrapped = row.enumerated().map { wrap($0.element, width: widths[$0.offset]) }
            let height = wrapped.map(\.count).max() ?? 1
            for lineIndex in 0..<height {
                var line = ""
                for column in 0..<row.count {
                    let text = lineIndex < wrapped[column].count ? wrapped[column][lineIndex] : ""
                    let padded = column == row.count - 1 ? text : text.padding(toLength: widths[column], withPad: " ", startingAt: 0)
                    if column == 3, lineIndex == 0, colour, let result {
                        line += paint(padded, result)
                    } else {
                        line += padded
                    }
                    if column < row.count - 1 { line += String(repeating: " ", count: separator) }
                }
                lines.append(String(line.reversed().drop(while: { $0 == " " }).reversed()))
            }
        }
        emit(headers, result: nil)
        lines.append(widths.enumerated().map { String(repeating: "-", count: $0.offset == widths.count - 1 ? min($0.element, 20) : $0.element) }
            .joined(separator: String(repeating: " ", count: separator)))
        for (row, cell) in zip(rows, cells) { emit(cell, result: row.result) }
        lines.append("")
        lines.append(summary(rows))
        return lines.joined(separator: "\n") + "\n"
    }

    /// `12 pass, 1 fail, 2 warn, 0 info, 3 skip: 1 step failed`.
    public static func summary(_ rows: [RelayDoctorRow]) -> String {
        let counts = [RelayDoctorRow.Result.pass, .fail, .warn, .info, .skip].map { result in
            "\(rows.filter { $0.result == result }.count) \(result.rawValue)"
        }
        let failures = rows.filter { $0.result == .fail }.count
        return counts.joined(separator: ", ") + (failures == 0 ? ": no step failed" : ": \(failures) step\(failures == 1 ? "" : "s") failed, see the hints")
    }

    /// Whether standard output is a terminal that may be coloured: a TTY and `NO_COLOR` unset (no-color.org).
    public static var colourStandardOutput: Bool {
        isatty(STDOUT_FILENO) == 1 && (ProcessInfo.processInfo.environment["NO_COLOR"] ?? "").isEmpty
    }

    /// The terminal's width when standard output is one (`COLUMNS`, else the tty), else 120.
    public static var standardOutputWidth: Int {
        if let columns = ProcessInfo.processInfo.environment["COLUMNS"].flatMap(Int.init), columns >= 40 { return columns }
        var size = winsize()
        if isatty(STDOUT_FILENO) == 1, ioctl(STDOUT_FILENO, UInt(TIOCGWINSZ), &size) == 0, size.ws_col >= 40 { return Int(size.ws_col) }
        return 120
    }

    private static func paint(_ text: String, _ result: RelayDoctorRow.Result) -> String {
        let code: String
        switch result {
        case .pass: code = "32"
        case .fail: code = "1;31"
        case .warn: code = "33"
        case .info: code = "36"
        case .skip: code = "2"
        }
        return "\u{1B}[\(code)m\(text)\u{1B}[0m"
    }

    /// Splits `text` into lines of at most `width` characters, at spaces where it can.
    static func wrap(_ text: String, width: Int) -> [String] {
        guard width > 0, text.count > width else { return [text] }
        var lines: [String] = []
        var current = ""
        for word in text.split(separator: " ", omittingEmptySubsequences: false) {
            var word = Substring(word)
            while word.count > width {
                // A word longer than the column (a path, a host name): cut it after a
                // separator where there is one, so that its parts stay readable.
                if !current.isEmpty { lines.append(current); current = "" }
                let head = word.prefix(width)
                let cut = head.lastIndex(where: { "/.-_,;:=@".contains($0) }).map { head.distance(from: head.startIndex, to: $0) + 1 }
                let length = cut.flatMap { $0 > width / 3 ? $0 : nil } ?? width
                lines.append(String(word.prefix(length)))
                word = word.dropFirst(length)
            }
            if current.isEmpty {
                current = String(word)
            } else if current.count + 1 + word.count <= width {
                current += " " + word
            } else {
                lines.append(current)
                current = String(word)
            }
        }
        if !current.isEmpty { lines.append(current) }
        return lines.isEmpty ? [""] : lines
    }
}
