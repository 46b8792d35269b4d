/// A client's sender rules, as the message repair needs them.
///
/// Separate from ``RelayConfiguration/Client`` so that the decisions can be
/// table-tested without building a whole client entry.
public struct RelaySenderRules: Hashable, Sendable {
    /// `allowed_senders`: checked on the envelope sender at MAIL, and here on `From:` and `Sender:`.
    public var allowedSenders: [String]
    /// `rewrite_sender`: the envelope sender and `From:` become this address.
    public var rewriteSender: String?
    public var rewriteDisplayName: RelayConfiguration.DisplayNameRewrite
    /// `reply_to_original`: with a rewrite, `Reply-To:` names the original author (unless there is one already).
    public var replyToOriginal: Bool
    /// `strip_headers`: field names removed before queueing, compared without case.
    public var stripHeaders: [String]

    public init(
        allowedSenders: [String] = ["*"], rewriteSender: String? = nil, rewriteDisplayName: RelayConfiguration.DisplayNameRewrite = .keep,
        replyToOriginal: Bool = false, stripHeaders: [String] = []
    ) {
        self.allowedSenders = allowedSenders
        self.rewriteSender = rewriteSender
        self.rewriteDisplayName = rewriteDisplayName
        self.replyToOriginal = replyToOriginal
        self.stripHeaders = stripHeaders
    }

    public init(client: RelayConfiguration.Client) {
        self.init(
            allowedSenders: client.allowedSenders, rewriteSender: client.rewriteSender, rewriteDisplayName: client.rewriteDisplayName,
            replyToOriginal: client.replyToOriginal, stripHeaders: client.stripHeaders)
    }
}

/// How `rewrite_sender` changes the author fields.
///
/// The envelope sender and `From:` become the rewrite address; the display
/// name is kept, dropped or replaced; `Reply-To:` may carry the original
/// author so that answers still reach the person (or device owner) behind it.
/// `Sender:` fields go: they would name the device's own address, which the
/// rewrite exists to hide, and which `allowed_senders` would then refuse.
/// - SeeAlso: PRODUCT.md "Sender rules"; RFC 5322 §3.6.2
public enum RelaySenderRewrite {
    public struct Outcome: Hashable, Sendable {
        /// The single `From:` mailbox.
        public var from: RelayHeaderAddress
        /// The `Reply-To:` to add, when asked for and useful.
        public var replyTo: [RelayHeaderAddress]?
    }

    /// - Parameters:
    ///   - original: what the message's `From:` fields said.
    ///   - envelopeSender: the sender given at MAIL (empty for `<>`).
    ///   - hasReplyTo: whether the message already has a `Reply-To:` (it is never replaced).
    public static func rewrite(
        to address: String, displayName: RelayConfiguration.DisplayNameRewrite, replyToOriginal: Bool,
        original: RelayFromField.Reading, envelopeSender: String, hasReplyTo: Bool
    ) -> Outcome {
        let name: String?
        switch displayName {
        case .keep: name = original.displayName
        case .drop: name = nil
        case .replace(let text): name = text.isEmpty ? nil : text
        }
        let from = RelayHeaderAddress(displayName: name, address: address)
        guard replyToOriginal, !hasReplyTo else { return Outcome(from: from, replyTo: nil) }
        var authors = original.mailboxes
        if authors.isEmpty, !envelopeSender.isEmpty {
            authors = [RelayHeaderAddress(displayName: original.bareName, address: envelopeSender)]
        }
        // Replies to the rewrite address itself would change nothing.
        authors.removeAll { $0.comparisonKey == address.lowercased() }
        return Outcome(from: from, replyTo: authors.isEmpty ? nil : authors)
    }
}
