import Foundation
import Synchronization

/// A child process started with `posix_spawn`, for tests.
///
/// Foundation's `Process.run()` on Linux emulates CLOEXEC-by-default by
/// listing every open descriptor of the parent; with the suite's many relays
/// open at once (well over a thousand descriptors) that listing raced with
/// descriptors opening and closing and crashed the test process (seen in CI:
/// a bad pointer in `memcpy` under `Process.run()`). Here the child closes
/// everything above stderr itself (`posix_spawn_file_actions_addclosefrom_np`,
/// glibc 2.34), so the parent lists nothing.
public final class SpawnedProcess: Sendable {
    public let pid: pid_t
    private let exit = DispatchSemaphore(value: 0)
    private let status = ExitStatus()
    private let signalled = Flag()

    private final class Flag: Sendable {
        private let value = Mutex(false)
        func withLock<R>(_ body: (inout Bool) -> R) -> R { value.withLock { body(&$0) } }
    }

    /// Whether a signal, not an exit, ended the child.
    public var endedBySignal: Bool { signalled.withLock { $0 } }

    /// The child's status, shared with its waiting thread.
    private final class ExitStatus: Sendable {
        private let value = Mutex<Int32?>(nil)
        func withLock<R>(_ body: (inout Int32?) -> R) -> R { value.withLock { body(&$0) } }
    }

    /// Starts `executable` with `arguments`; the child's stdin, stdout and stderr are the given descriptors.
    public init(
        _ executable: String, _ arguments: [String], stdin: Int32, stdout: Int32, stderr: Int32, environment: [String: String]? = nil,
        workingDirectory: String? = nil
    ) throws {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, stdin, 0)
        posix_spawn_file_actions_adddup2(&actions, stdout, 1)
        posix_spawn_file_actions_adddup2(&actions, stderr, 2)
        // glibc declares it only under _GNU_SOURCE, which Swift's Glibc module does not set.
        guard let closeFrom = Self.addCloseFrom else {
            throw CocoaError(.executableLoad, userInfo: [NSLocalizedDescriptionKey: "posix_spawn_file_actions_addclosefrom_np is missing (glibc 2.34 or later needed)"])
        }
        _ = closeFrom(&actions, 3)
        if let workingDirectory {
            guard let changeDirectory = Self.addChangeDirectory else {
                throw CocoaError(.executableLoad, userInfo: [NSLocalizedDescriptionKey: "posix_spawn_file_actions_addchdir_np is missing"])
            }
            _ = changeDirectory(&actions, workingDirectory)
        }

        let argv: [UnsafeMutablePointer<CChar>?] = ([executable] + arguments).map { strdup($0) } + [nil]
        let environmentPairs = (environment ?? ProcessInfo.processInfo.environment).map { "\($0.key)=\($0.value)" }
        let envp: [UnsafeMutablePointer<CChar>?] = environmentPairs.map { strdup($0) } + [nil]
        defer {
            for pointer in argv { free(pointer) }
            for pointer in envp { free(pointer) }
        }
        // A clean start: its own process group (as Foundation's Process does),
        // no blocked signals, and default dispositions, whatever the test
        // process's threads block or ignore.
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var noSignals = sigset_t()
        sigemptyset(&noSignals)
        var allSignals = sigset_t()
        sigfillset(&allSignals)
        posix_spawnattr_setsigmask(&attributes, &noSignals)
        posix_spawnattr_setsigdefault(&attributes, &allSignals)
        posix_spawnattr_setpgroup(&attributes, 0)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETPGROUP))
        var child = pid_t()
        let result = posix_spawn(&child, executable, &actions, &attributes, argv, envp)
        guard result == 0 else {
            throw CocoaError(.executableLoad, userInfo: [NSFilePathErrorKey: executable, "errno": result, NSLocalizedDescriptionKey: "cannot start \(executable): \(String(cString: strerror(result)))"])
        }
        pid = child
        // One waiting thread per child: waitpid blocks, and never on the cooperative pool.
        let thread = Thread { [status, signalled, exit, child] in
            var raw: Int32 = 0
            while waitpid(child, &raw, 0) == -1 && errno == EINTR {}
            let code = (raw & 0x7f) == 0 ? (raw >> 8) & 0xff : 128 + (raw & 0x7f)
            signalled.withLock { $0 = (raw & 0x7f) != 0 }
            status.withLock { $0 = code }
            exit.signal()
        }
        thread.start()
    }

    private typealias AddCloseFrom = @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, Int32) -> Int32
    private static let addCloseFrom: AddCloseFrom? = {
        guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "posix_spawn_file_actions_addclosefrom_np") else { return nil }
        return unsafeBitCast(symbol, to: AddCloseFrom.self)
    }()

    private typealias AddChangeDirectory = @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, UnsafePointer<CChar>) -> Int32
    private static let addChangeDirectory: AddChangeDirectory? = {
        guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "posix_spawn_file_actions_addchdir_np") else { return nil }
        return unsafeBitCast(symbol, to: AddChangeDirectory.self)
    }()

    /// Starts `executable` with stdin from /dev/null and stdout and stderr appended to files.
    public convenience init(_ executable: String, _ arguments: [String], stdoutFile: String, stderrFile: String, workingDirectory: String? = nil) throws {
        let input = open("/dev/null", O_RDONLY | O_CLOEXEC)
        let output = open(stdoutFile, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o600)
        let errors = open(stderrFile, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o600)
        defer { for descriptor in [input, output, errors] where descriptor >= 0 { close(descriptor) } }
        guard input >= 0, output >= 0, errors >= 0 else {
            throw CocoaError(.fileWriteUnknown, userInfo: [NSLocalizedDescriptionKey: "cannot open the output files of \(executable)"])
        }
        try self.init(executable, arguments, stdin: input, stdout: output, stderr: errors, workingDirectory: workingDirectory)
    }

    /// Blocks until the child ends (for synchronous callers off the cooperative pool).
    public func waitUntilExit() -> Int32 {
        exit.wait()
        exit.signal()
        return exitStatus ?? -1
    }

    /// The exit status once the child has ended (128 + signal when a signal ended it); nil while it runs.
    public var exitStatus: Int32? { status.withLock { $0 } }
    public var isRunning: Bool { exitStatus == nil }

    /// Waits off the cooperative pool until the child ends; returns its status.
    public func wait() async -> Int32 {
        if let code = exitStatus { return code }
        return await withCheckedContinuation { continuation in
            DispatchQueue.global().async { [exit, status] in
                exit.wait()
                exit.signal()
                continuation.resume(returning: status.withLock { $0 } ?? -1)
            }
        }
    }

    public func signal(_ signal: Int32) {
        if isRunning { kill(pid, signal) }
    }
}
