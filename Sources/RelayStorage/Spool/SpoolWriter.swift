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

/// Appends one message's content to its spool file as the chunks arrive.
///
/// `write(_:)` runs on an event loop, so it is a plain `write(2)` into the
/// page cache and nothing more; the one `fsync` happens at commit, on the
/// store's I/O threads. The state sits behind an (uncontended) lock so that the
/// writer is honestly `Sendable` when a session hands it to `commit`.
public final class SpoolWriter: RelayMessageWriter {
    private enum Phase {
        case open(descriptor: Int32)
        /// The store took the descriptor to sync it; the file is the store's now.
        case handedOver
        case aborted
    }

    private struct State {
        var phase: Phase
        var size = 0
    }

    public let id: RelayQueueID
    let path: String
    /// The spool directory that made this writer, so that a store refuses another store's writer.
    let directory: String
    private let state: Mutex<State>

    init(id: RelayQueueID, path: String, directory: String, descriptor: Int32) {
        self.id = id
        self.path = path
        self.directory = directory
        self.state = Mutex(State(phase: .open(descriptor: descriptor)))
    }

    deinit {
        // Dropped without commit or abort: nothing was acknowledged, so nothing may remain.
        abort()
    }

    public var size: Int {
        state.withLock { $0.size }
    }

    public func write(_ chunk: ByteBuffer) throws {
        try state.withLock { state in
            guard case .open(let descriptor) = state.phase else {
                throw RelayStorageError(.io, "write to a closed spool file")
            }
            try chunk.withUnsafeReadableBytes { bytes in
                guard let base = bytes.baseAddress else { return }
                var offset = 0
                while offset < bytes.count {
                    let written = systemWrite(descriptor, base + offset, bytes.count - offset)
                    if written < 0 {
                        let code = errno
                        if code == EINTR { continue }
                        throw POSIXFile.error("write \(id)", code)
                    }
                    offset += written
                }
            }
            state.size += chunk.readableBytes
        }
    }

    public func abort() {
        let descriptor = state.withLock { state -> Int32? in
            guard case .open(let descriptor) = state.phase else { return nil }
            state.phase = .aborted
            return descriptor
        }
        guard let descriptor else { return }
        POSIXFile.close(descriptor)
        unlink(path)
    }

    /// Gives the open descriptor to the store for syncing; later `abort()` calls do nothing.
    func handOver() throws -> (descriptor: Int32, size: Int) {
        try state.withLock { state in
            guard case .open(let descriptor) = state.phase else {
                throw RelayStorageError(.io, "commit of a spool file that was aborted or already committed")
            }
            state.phase = .handedOver
            return (descriptor, state.size)
        }
    }
}

// The writer's method is named `write`, so the system call needs another name.
private func systemWrite(_ descriptor: Int32, _ bytes: UnsafeRawPointer, _ count: Int) -> Int {
    #if canImport(Glibc)
    return Glibc.write(descriptor, bytes, count)
    #elseif canImport(Musl)
    return Musl.write(descriptor, bytes, count)
    #else
    return Darwin.write(descriptor, bytes, count)
    #endif
}
