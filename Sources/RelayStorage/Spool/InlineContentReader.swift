import NIOCore
import RelayCore
import Synchronization

/// Reads content held in memory: a small message the database held, or a
/// message made on the spot (doctor's test message).
public final class InlineContentReader: RelayContentReader {
    private let remaining: Mutex<ByteBuffer?>

    public init(_ content: ByteBuffer) {
        remaining = Mutex(content)
    }

    public func read(maxLength: Int) throws -> ByteBuffer? {
        remaining.withLock { buffer in
            guard var current = buffer, current.readableBytes > 0 else { return nil }
            let chunk = current.readSlice(length: min(maxLength, current.readableBytes))
            buffer = current
            return chunk
        }
    }

    public func close() {
        remaining.withLock { $0 = nil }
    }
}
