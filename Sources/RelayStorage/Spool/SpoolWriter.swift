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

/// Takes one message's content as the chunks arrive.
///
/// Content up to `inlineLimit` octets stays in memory and is committed into
/// the database with the envelope, in the same group transaction: most relay
/// mail is small, and a file created, synced and unlinked per message costs
/// more than the message (ext4's inode allocation showed at the top of the
/// benchmark's profile). Past the limit the writer spills to a spool file, so
/// memory per session stays bounded whatever the message size.
///
/// `write(_:)` runs on an event loop, so it is a memory copy or a plain
/// `write(2)` into the page cache and nothing more; the one `fsync` happens at
/// commit, on the store's I/O threads. The state sits behind an (uncontended)
/// lock so that the writer is honestly `Sendable` when a session hands it to `commit`.
public final class SpoolWriter: RelayMessageWriter {
    enum Content {
        case inline(ByteBuffer)
        case file(descriptor: Int32)
    }

    private enum Phase {
        /// Small so far: in memory.
        case buffering(ByteBuffer)
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
    private let inlineLimit: Int
    private let state: Mutex<State>

    /// - Parameter descriptor: an already created file, when nothing is to be kept in memory.
    init(id: RelayQueueID, path: String, directory: String, inlineLimit: Int, descriptor: Int32? = nil) {
        self.id = id
        self.path = path
        self.directory = directory
        self.inlineLimit = inlineLimit
        self.state = Mutex(State(phase: descriptor.map { .open(descriptor: $0) } ?? .buffering(ByteBuffer())))
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
            let descriptor: Int32
            switch state.phase {
            case .buffering(var buffer):
                if buffer.readableBytes + chunk.readableBytes <= inlineLimit {
                    state.phase = .aborted  // drop the enum's reference so the buffer is not copied on write
                    buffer.writeImmutableBuffer(chunk)
                    state.phase = .buffering(buffer)
                    state.size += chunk.readableBytes
                    return
                }
                // Too large to keep in memory: from here on the content streams to a file.
                let created = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
                guard created >= 0 else { throw POSIXFile.error("create \(id)", errno) }
                state.phase = .open(descriptor: created)
                try Self.writeAll(buffer, to: created, id: id)
                descriptor = created
            case .open(let open):
                descriptor = open
            case .handedOver, .aborted:
                throw RelayStorageError(.io, "write to a closed spool file")
            }
            try Self.writeAll(chunk, to: descriptor, id: id)
            state.size += chunk.readableBytes
        }
    }

    private static func writeAll(_ chunk: ByteBuffer, to descriptor: Int32, id: RelayQueueID) throws {
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
    }

    public func abort() {
        let descriptor = state.withLock { state -> Int32? in
            if case .buffering = state.phase { state.phase = .aborted }
            guard case .open(let descriptor) = state.phase else { return nil }
            state.phase = .aborted
            return descriptor
        }
        guard let descriptor else { return }
        POSIXFile.close(descriptor)
        unlink(path)
    }

    /// Gives the content (in memory, or the open descriptor to sync) to the
    /// store; later `abort()` calls do nothing.
    func handOver() throws -> (content: Content, size: Int) {
        try state.withLock { state in
            let content: Content
            switch state.phase {
            case .buffering(let buffer): content = .inline(buffer)
            case .open(let descriptor): content = .file(descriptor: descriptor)
            case .handedOver, .aborted:
                throw RelayStorageError(.io, "commit of a spool file that was aborted or already committed")
            }
            state.phase = .handedOver
            return (content, state.size)
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
