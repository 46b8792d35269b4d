/// Message content in, repaired content out, chunk by chunk, in bounded memory.
///
/// The header section is held until it ends (at most
/// ``RelayMessageRepair/Limits/maximumHeaderSection``), repaired by
/// ``RelayMessageRepair``, and written first. A text body that could be
/// re-encoded is held for at most ``RelayMessageRepair/Limits/bodyLookahead``
/// octets to learn whether it needs it (the transfer encoding is declared in
/// the header, which must be written before the body); any other body
/// streams through, watched for over-long lines. Any chunking of the same
/// input gives the same output.
///
/// Once refused, the stream drops what follows; the caller discards what it
/// already wrote and answers with ``refusal``.
public struct RelayMessageRepairStream: Sendable {
    private enum Phase: Sendable {
        /// Header bytes so far; `scanned` is the start of the first line not yet classified.
        case header(buffer: [UInt8], scanned: Int)
        /// The header is repaired but not written: the text body might need re-encoding.
        case lookahead(buffer: [UInt8], tracker: RelayLineLengthTracker)
        /// Written as is; a long line refuses the message, for the reason given.
        case passThrough(tracker: RelayLineLengthTracker, whyNot: String)
        case quotedPrintable(RelayQuotedPrintableEncoder)
        case refused(RelayRepairRefusal)
    }

    public let context: RelayMessageRepair.Context
    public let limits: RelayMessageRepair.Limits
    private var phase: Phase = .header(buffer: [], scanned: 0)
    /// The repaired header once the header section has ended.
    public private(set) var header: RelayRepairedHeader?

    public init(context: RelayMessageRepair.Context, limits: RelayMessageRepair.Limits = .init()) {
        self.context = context
        self.limits = limits
    }

    /// Why the message cannot be queued, once that is known.
    public var refusal: RelayRepairRefusal? {
        if case .refused(let refusal) = phase { return refusal }
        return nil
    }

    /// Every change made so far.
    public var applied: [RelayRepair] { header?.applied ?? [] }

    /// Takes the next chunk of content; returns what to write now (often nothing while the header is held).
    public mutating func consume(_ chunk: some Collection<UInt8>) -> [UInt8] {
        consumeInPlace(chunk) ?? Array(chunk)
    }

    /// ``consume(_:)`` for the hot path: nil means "write the chunk as it came",
    /// which is what most of a large body gets, so the caller need not copy it.
    public mutating func consumeInPlace(_ chunk: some Collection<UInt8>) -> [UInt8]? {
        switch phase {
        case .refused:
            return []
        case .header(var buffer, let scanned):
            phase = .refused(.headerTooLarge(0))  // placeholder while `buffer` is owned here, avoiding a copy
            buffer.append(contentsOf: chunk)
            switch Self.headerEnd(buffer, from: scanned, atEnd: false) {
            case .needMore(let next):
                if buffer.count > limits.maximumHeaderSection {
                    phase = .refused(.headerTooLarge(limits.maximumHeaderSection))
                    return []
                }
                phase = .header(buffer: buffer, scanned: next)
                return []
            case .found(let headerEnd, let bodyStart, let emptyLine):
                return headerEnded(buffer, headerEnd: headerEnd, bodyStart: bodyStart, emptyLine: emptyLine)
            }
        case .lookahead(var buffer, var tracker):
            phase = .refused(.headerTooLarge(0))
            let before = buffer.count
            buffer.append(contentsOf: chunk)
            // Only the first `bodyLookahead` octets decide, whatever the chunking.
            if before < limits.bodyLookahead { tracker.scan(buffer[before..<min(buffer.count, limits.bodyLookahead)]) }
            return decideBody(buffer, tracker: tracker)
        case .passThrough(var tracker, let whyNot):
            tracker.scan(chunk)
            if tracker.exceeds(limits.maximumLineLength) {
                phase = .refused(.bodyLineTooLong(whyNot))
                return []
            }
            phase = .passThrough(tracker: tracker, whyNot: whyNot)
            return nil
        case .quotedPrintable(var encoder):
            let output = encoder.encode(chunk)
            phase = .quotedPrintable(encoder)
            return output
        }
    }

    /// The end of the content: the rest to write, or the refusal.
    public mutating func finish() -> Result<[UInt8], RelayRepairRefusal> {
        switch phase {
        case .refused(let refusal):
            return .failure(refusal)
        case .header(let buffer, let scanned):
            guard buffer.count <= limits.maximumHeaderSection else {
                phase = .refused(.headerTooLarge(limits.maximumHeaderSection))
                return .failure(.headerTooLarge(limits.maximumHeaderSection))
            }
            guard case .found(let headerEnd, let bodyStart, let emptyLine) = Self.headerEnd(buffer, from: scanned, atEnd: true) else {
                preconditionFailure("at the end the header section always ends")
            }
            var output = headerEnded(buffer, headerEnd: headerEnd, bodyStart: bodyStart, emptyLine: emptyLine)
            if let refusal { return .failure(refusal) }
            switch finish() {
            case .success(let rest): output += rest
            case .failure(let refusal): return .failure(refusal)
            }
            return .success(output)
        case .lookahead(let buffer, _):
            // The whole body fit and no line was too long: as it came.
            let output = (header?.rendered() ?? []) + buffer
            phase = .passThrough(tracker: RelayLineLengthTracker(), whyNot: "")
            return .success(output)
        case .passThrough:
            return .success([])
        case .quotedPrintable(var encoder):
            let output = encoder.finish()
            phase = .quotedPrintable(encoder)
            return .success(output)
        }
    }

    // MARK: Steps

    private mutating func headerEnded(_ buffer: [UInt8], headerEnd: Int, bodyStart: Int, emptyLine: Bool) -> [UInt8] {
        guard headerEnd <= limits.maximumHeaderSection else {
            phase = .refused(.headerTooLarge(limits.maximumHeaderSection))
            return []
        }
        let body = buffer[bodyStart...]
        // A header-only message needs no empty line; one with a body and none gets it.
        let ended = emptyLine || body.isEmpty
        switch RelayMessageRepair.repairHeader(Array(buffer[..<headerEnd]), endsWithEmptyLine: ended, context: context, limits: limits) {
        case .failure(let refusal):
            phase = .refused(refusal)
            return []
        case .success(let repaired):
            header = repaired
            if repaired.canReencodeBody {
                var tracker = RelayLineLengthTracker()
                tracker.scan(body.prefix(limits.bodyLookahead))
                return decideBody(Array(body), tracker: tracker)
            }
            var tracker = RelayLineLengthTracker()
            tracker.scan(body)
            if tracker.exceeds(limits.maximumLineLength) {
                phase = .refused(.bodyLineTooLong(repaired.whyBodyCannotBeReencoded ?? ""))
                return []
            }
            phase = .passThrough(tracker: tracker, whyNot: repaired.whyBodyCannotBeReencoded ?? "")
            return repaired.rendered() + body
        }
    }

    /// A re-encodable body: re-encode it on its first long line, or give up
    /// holding it once the lookahead is full.
    /// `tracker` has seen the first `bodyLookahead` octets of `buffer` at most.
    private mutating func decideBody(_ buffer: [UInt8], tracker: RelayLineLengthTracker) -> [UInt8] {
        guard var header else { return [] }
        if tracker.exceeds(limits.maximumLineLength) {
            header.applied.append(.bodyQuotedPrintable)
            self.header = header
            var encoder = RelayQuotedPrintableEncoder()
            let output = header.rendered(quotedPrintableBody: true) + encoder.encode(buffer)
            phase = .quotedPrintable(encoder)
            return output
        }
        if buffer.count > limits.bodyLookahead {
            let whyNot = "it comes after the first \(limits.bodyLookahead) octets of the body, too far in to re-encode"
            var tracker = tracker
            tracker.scan(buffer[limits.bodyLookahead...])
            if tracker.exceeds(limits.maximumLineLength) {
                phase = .refused(.bodyLineTooLong(whyNot))
                return []
            }
            phase = .passThrough(tracker: tracker, whyNot: whyNot)
            return header.rendered() + buffer
        }
        phase = .lookahead(buffer: buffer, tracker: tracker)
        return []
    }

    // MARK: Where the header section ends

    enum HeaderEnd: Hashable {
        /// Not yet; lines before `next` are header fields.
        case needMore(next: Int)
        /// Fields end at `headerEnd`; the body starts at `bodyStart`
        /// (after the empty line, or at the first line that is not a field).
        case found(headerEnd: Int, bodyStart: Int, emptyLine: Bool)
    }

    /// Classifies whole lines from `start`, as ``RelayHeaderSection/parse(_:)`` reads them:
    /// an empty line ends the section; a line that is neither a field nor a
    /// continuation is the first line of the body.
    static func headerEnd(_ buffer: [UInt8], from start: Int, atEnd: Bool) -> HeaderEnd {
        var lineStart = start
        while lineStart < buffer.count {
            let newline = buffer[lineStart...].firstIndex(of: 10)
            guard newline != nil || atEnd else { return .needMore(next: lineStart) }
            let lineEnd = newline ?? buffer.count
            var line = buffer[lineStart..<lineEnd]
            if line.last == 13 { line = line.dropLast() }
            if line.isEmpty, newline != nil {
                return .found(headerEnd: lineStart, bodyStart: lineEnd + 1, emptyLine: true)
            }
            let continuation = line.first == 32 || line.first == 9
            if continuation ? lineStart == 0 : !isField(line) {
                return .found(headerEnd: lineStart, bodyStart: lineStart, emptyLine: false)
            }
            lineStart = newline.map { $0 + 1 } ?? buffer.count
        }
        return atEnd ? .found(headerEnd: buffer.count, bodyStart: buffer.count, emptyLine: false) : .needMore(next: lineStart)
    }

    /// `Name:` with a name that is not empty and holds no space.
    static func isField(_ line: ArraySlice<UInt8>) -> Bool {
        guard let colon = line.firstIndex(of: 58) else { return false }
        var name = line[..<colon]
        while let first = name.first, first == 32 || first == 9 { name = name.dropFirst() }
        while let last = name.last, last == 32 || last == 9 { name = name.dropLast() }
        return !name.isEmpty && !name.contains(32)
    }
}
