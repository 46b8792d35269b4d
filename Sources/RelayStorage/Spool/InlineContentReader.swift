import NIOCore
import RelayCore
import Synchronization

/// Reads a small message's content that the database held.
final class InlineContentReader: RelayContentReader {
    private let remaining: Mutex<ByteBuffer?>

    init(_ content: ByteBuffer) {
        remaining = Mutex(content)
    }

    func read(maxLength: Int) throws -> ByteBuffer? {
        remaining.withLock { buffer in
            guard var current = buffer, current.readableBytes > 0 else { return nil }
            let chunk = current.readSlice(length: min(maxLength, current.readableBytes))
            buffer = current
            return chunk
        }
    }

    func close() {
        remaining.withLock { $0 = nil }
    }
}
