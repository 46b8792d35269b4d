import Foundation
import NIOCore
import RelayCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// The directory that holds one content file per queued message, named by queue id.
///
/// Content lives beside the database rather than in it so that sessions can
/// stream large messages to disk chunk by chunk, and delivery can stream them
/// back, without either ever holding a whole message in memory.
final class SpoolDirectory: Sendable {
    let path: String
    /// Kept open so that one `fsync` makes a whole batch of new entries durable.
    private let descriptor: Int32

    /// Opens `path`, creating it (mode 0700) if needed.
    init(path: String) throws {
        try FileManager.default.createDirectory(
            atPath: path, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        let descriptor = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard descriptor >= 0 else { throw POSIXFile.error("open spool directory", errno) }
        self.path = path
        self.descriptor = descriptor
    }

    deinit {
        // Not at store close: queued fsync jobs may still hold the directory.
        POSIXFile.close(descriptor)
    }

    func filePath(for id: RelayQueueID) -> String {
        path + "/" + id.rawValue
    }

    /// Creates the content file; fails if one already exists for `id`.
    /// - Parameter inlineLimit: content up to this size stays in memory (and goes into the database).
    func makeWriter(id: RelayQueueID, inlineLimit: Int) throws -> SpoolWriter {
        // The id becomes a file name: refuse anything that is not a well-formed id.
        guard RelayQueueID(validating: id.rawValue) != nil else {
            throw RelayStorageError(.io, "malformed queue id")
        }
        let filePath = filePath(for: id)
        var descriptor: Int32?
        if inlineLimit <= 0 {
            // Everything goes to a file: create it now, so a reused id fails here.
            let created = open(filePath, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
            guard created >= 0 else { throw POSIXFile.error("create \(id)", errno) }
            descriptor = created
        }
        return SpoolWriter(id: id, path: filePath, directory: path, inlineLimit: inlineLimit, descriptor: descriptor)
    }

    func openReader(id: RelayQueueID) throws -> SpoolReader {
        guard RelayQueueID(validating: id.rawValue) != nil else {
            throw RelayStorageError(.notFound, "malformed queue id")
        }
        let descriptor = open(filePath(for: id), O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else {
            let code = errno
            if code == ENOENT { throw RelayStorageError(.notFound, "no content for \(id)") }
            throw POSIXFile.error("open \(id)", code)
        }
        return SpoolReader(descriptor: descriptor)
    }

    /// Removes a message's content; a file already gone is not an error.
    @discardableResult
    func remove(id: RelayQueueID) -> Bool {
        guard RelayQueueID(validating: id.rawValue) != nil else { return false }
        return unlink(filePath(for: id)) == 0
    }

    /// Makes every entry created or removed so far durable. Blocking: call it off the cooperative pool.
    func synchronize() throws {
        try POSIXFile.synchronize(descriptor, what: "spool directory")
    }

    /// Names of the entries that look like queue ids; anything else is not ours to touch.
    func storedIDs() throws -> [RelayQueueID] {
        try FileManager.default.contentsOfDirectory(atPath: path).compactMap(RelayQueueID.init(validating:))
    }
}

/// Thin wrappers over the POSIX calls the spool makes, turning failures into storage errors.
enum POSIXFile {
    static func error(_ operation: String, _ code: Int32) -> RelayStorageError {
        RelayStorageError(.io, "\(operation): \(String(cString: strerror(code)))")
    }

    static func synchronize(_ descriptor: Int32, what: String) throws {
        while fsync(descriptor) != 0 {
            let code = errno
            if code != EINTR { throw error("fsync \(what)", code) }
        }
    }

    /// Not retried on EINTR: on Linux the descriptor is released either way.
    static func close(_ descriptor: Int32) {
        #if canImport(Glibc)
        _ = Glibc.close(descriptor)
        #elseif canImport(Musl)
        _ = Musl.close(descriptor)
        #else
        _ = Darwin.close(descriptor)
        #endif
    }
}
