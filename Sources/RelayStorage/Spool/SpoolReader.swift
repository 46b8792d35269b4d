import NIOCore
import RelayCore
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Reads a message's content back, chunk by chunk.
public final class SpoolReader: RelayContentReader {
    /// nil once closed. Behind a lock so that the reader is honestly `Sendable`.
    private let descriptor: Mutex<Int32?>

    init(descriptor: Int32) {
        self.descriptor = Mutex(descriptor)
    }

    deinit {
        close()
    }

    public func read(maxLength: Int) throws -> ByteBuffer? {
        precondition(maxLength > 0, "maxLength must be positive")
        return try descriptor.withLock { descriptor in
            guard let descriptor else { return nil }
            var buffer = ByteBufferAllocator().buffer(capacity: maxLength)
            let count = try buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: maxLength) { bytes in
                while true {
                    let count = systemRead(descriptor, bytes.baseAddress, maxLength)
                    if count >= 0 { return count }
                    let code = errno
                    if code != EINTR { throw POSIXFile.error("read spool file", code) }
                }
            }
            return count == 0 ? nil : buffer
        }
    }

    public func close() {
        let open = descriptor.withLock { descriptor in
            defer { descriptor = nil }
            return descriptor
        }
        if let open { POSIXFile.close(open) }
    }
}

// The reader's method is named `read`, so the system call needs another name.
private func systemRead(_ descriptor: Int32, _ bytes: UnsafeMutableRawPointer?, _ count: Int) -> Int {
    #if canImport(Glibc)
    return Glibc.read(descriptor, bytes, count)
    #elseif canImport(Musl)
    return Musl.read(descriptor, bytes, count)
    #else
    return Darwin.read(descriptor, bytes, count)
    #endif
}
