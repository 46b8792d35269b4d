/// A queue id: 16 characters of Crockford base32, time-ordered so that ids
/// sort roughly by arrival, random in the rest so that nodes never collide.
public struct RelayQueueID: Hashable, Sendable, Codable, Comparable, CustomStringConvertible {
    public var rawValue: String

    public init(rawValue: String) { self.rawValue = rawValue }

    /// Whether `text` has the shape of a queue id (it is also used as a file name).
    public init?(validating text: String) {
        guard text.count == 16, text.unicodeScalars.allSatisfy({ Self.alphabet.unicodeScalars.contains($0) }) else { return nil }
        self.rawValue = text
    }

    /// - Parameter millisecondsSinceEpoch: the arrival time, from the caller's clock.
    public static func make<G: RandomNumberGenerator>(millisecondsSinceEpoch: UInt64, using generator: inout G) -> RelayQueueID {
        let alphabet = Array(Self.alphabet)
        var chars: [Character] = []
        chars.reserveCapacity(16)
        // 9 characters of time (45 bits of milliseconds: good until year 3084).
        var t = millisecondsSinceEpoch
        var timeChars: [Character] = []
        for _ in 0..<9 { timeChars.append(alphabet[Int(t & 31)]); t >>= 5 }
        chars.append(contentsOf: timeChars.reversed())
        for _ in 0..<7 { chars.append(alphabet[Int(generator.next() & 31)]) }
        return RelayQueueID(rawValue: String(chars))
    }

    public static func make(millisecondsSinceEpoch: UInt64) -> RelayQueueID {
        var g = SystemRandomNumberGenerator()
        return make(millisecondsSinceEpoch: millisecondsSinceEpoch, using: &g)
    }

    static let alphabet = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"

    public var description: String { rawValue }
    public static func < (a: Self, b: Self) -> Bool { a.rawValue < b.rawValue }
}
