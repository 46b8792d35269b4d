/// A credential (password, access token, or an encoded SASL response that
/// contains one) that never shows itself in logs.
///
/// Every way Swift has of printing a value (`description`, `debugDescription`,
/// `dump`, string interpolation, the mirror used by test failure messages)
/// yields `<redacted>`. The only way to the bytes is ``unredacted``, which
/// reads as what it is at the call site.
public struct SASLSecret: Hashable, Sendable, ExpressibleByStringLiteral,
    CustomStringConvertible, CustomDebugStringConvertible, CustomReflectable
{
    /// The secret itself. Only the code that puts it on the wire or checks it should read this.
    public let unredacted: String

    public init(_ value: String) {
        self.unredacted = value
    }

    public init(stringLiteral value: String) {
        self.init(value)
    }

    public var isEmpty: Bool { unredacted.isEmpty }

    public var description: String { "<redacted>" }
    public var debugDescription: String { "<redacted>" }
    public var customMirror: Mirror { Mirror(self, children: [], displayStyle: .struct) }
}
