import Foundation

/// A directory under /tmp removed when the test is done with it.
public final class TemporaryDirectory: @unchecked Sendable {
    public let path: String

    public init(_ label: String = "m365-relay-test") {
        let base = (NSTemporaryDirectory() as NSString).appendingPathComponent("\(label)-\(UUID().uuidString.prefix(8))")
        try! FileManager.default.createDirectory(atPath: base, withIntermediateDirectories: true)
        path = base
    }

    public func file(_ name: String) -> String { (path as NSString).appendingPathComponent(name) }

    public func write(_ name: String, _ text: String, mode: Int = 0o600) throws -> String {
        let target = file(name)
        try text.write(toFile: target, atomically: true, encoding: .utf8)
        try FileManager.default.setAttributes([.posixPermissions: mode], ofItemAtPath: target)
        return target
    }

    deinit { try? FileManager.default.removeItem(atPath: path) }
}

/// Runs an external program (python3, the relay binary) and captures its output.
public struct ExternalProcess {
    public struct Result: Sendable {
        public var status: Int32
        public var stdout: String
        public var stderr: String
    }

    /// Runs to completion, killing the program after `timeout` seconds.
    /// Runs to completion, killing the program after `timeout` seconds. Waits
    /// through the process's termination handler, blocking no thread, so that
    /// many tests (and a relay in the same process) run side by side.
    public static func run(_ executable: String, _ arguments: [String], stdin: String? = nil, timeout: TimeInterval = 60) async throws -> Result {
        // Output goes to files, not pipes, so a chatty program never blocks on a full pipe.
        let directory = TemporaryDirectory("process")
        let outPath = directory.file("stdout"), errPath = directory.file("stderr")
        FileManager.default.createFile(atPath: outPath, contents: nil)
        FileManager.default.createFile(atPath: errPath, contents: nil)
        let output = open(outPath, O_WRONLY | O_CLOEXEC)
        let errors = open(errPath, O_WRONLY | O_CLOEXEC)
        var input: [Int32] = [-1, -1]
        defer {
            for descriptor in [output, errors, input[0], input[1]] where descriptor >= 0 { close(descriptor) }
        }
        guard output >= 0, errors >= 0, pipe(&input) == 0 else {
            throw CocoaError(.fileWriteUnknown, userInfo: [NSLocalizedDescriptionKey: "cannot prepare the output files of \(executable)"])
        }
        // Not inherited by other children started meanwhile.
        for descriptor in input { _ = fcntl(descriptor, F_SETFD, FD_CLOEXEC) }
        // posix_spawn, not Foundation's Process: see SpawnedProcess.
        let child = try SpawnedProcess(executable, arguments, stdin: input[0], stdout: output, stderr: errors)
        close(input[0])
        input[0] = -1
        if let stdin {
            let bytes = Array(stdin.utf8)
            var offset = 0
            while offset < bytes.count {
                let written = bytes[offset...].withUnsafeBytes { Glibc.write(input[1], $0.baseAddress, $0.count) }
                if written <= 0 { break }
                offset += written
            }
        }
        close(input[1])
        input[1] = -1
        let pid = child.pid
        DispatchQueue.global().asyncAfter(deadline: .now() + timeout) {
            if child.isRunning { kill(pid, SIGKILL) }
        }
        let status = await child.wait()
        let out = (try? String(contentsOfFile: outPath, encoding: .utf8)) ?? ""
        let err = (try? String(contentsOfFile: errPath, encoding: .utf8)) ?? ""
        return Result(status: status, stdout: out, stderr: err)
    }

    /// python3 from PATH (the system's or pyenv's; smtplib is in its standard library).
    public static var python: String {
        for candidate in (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin").split(separator: ":") {
            let path = "\(candidate)/python3"
            if FileManager.default.isExecutableFile(atPath: path) { return path }
        }
        return "/usr/bin/python3"
    }

    public static func python(_ script: String, _ arguments: [String] = [], timeout: TimeInterval = 60) async throws -> Result {
        try await run(python, ["-c", script] + arguments, timeout: timeout)
    }
}

/// A TCP port on 127.0.0.1 that was free a moment ago.
public func freeLoopbackPort() -> Int {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    address.sin_port = 0
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    _ = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) } }
    _ = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) } }
    return Int(UInt16(bigEndian: address.sin_port))
}

/// Polls `condition` every 50 ms until it holds or `timeout` passes.
/// The timeout is an upper bound for a loaded 2-core CI machine where every
/// test runs at once; a condition that holds returns at once.
public func eventually(timeout: TimeInterval = 60, _ condition: () throws -> Bool) async rethrows -> Bool {
    let deadline = Date().addingTimeInterval(timeout)
    while Date() < deadline {
        if try condition() { return true }
        try? await Task.sleep(for: .milliseconds(50))
    }
    return try condition()
}

/// A python smtplib client, as the end-to-end tests use it: sends one message
/// read from a file and prints the server's final reply.
public let pythonSendScript = """
import smtplib, ssl, sys, json
args = json.loads(sys.argv[1])
source = (args.get("source", "127.0.0.1"), 0)
with open(args["file"], "rb") as f:
    content = f.read()
s = None
try:
    if args.get("implicit"):
        context = ssl.create_default_context(cafile=args["cafile"])
        s = smtplib.SMTP_SSL(args["host"], args["port"], source_address=source, timeout=60, context=context)
    else:
        s = smtplib.SMTP(args["host"], args["port"], source_address=source, timeout=60)
    s.ehlo("client.test")
    if args.get("starttls"):
        context = ssl.create_default_context(cafile=args["cafile"])
        s.starttls(context=context)
        s.ehlo("client.test")
    refused = s.sendmail(args["from"], args["to"], content)
    print(json.dumps({"ok": True, "refused": {k: [v[0], v[1].decode()] for k, v in refused.items()}}))
except (smtplib.SMTPException, OSError) as e:
    print(json.dumps({"ok": False, "error": repr(e)}))
try:
    if s is not None:
        s.quit()
except Exception:
    pass
"""

/// Runs CPU-heavy work (a key derivation, a large parse in a debug build) on a
/// Dispatch thread, so that the two threads of the Swift cooperative pool stay
/// free for the asynchronous tests running at the same time.
public func offCooperativePool<Value: Sendable>(_ work: @escaping @Sendable () throws -> Value) async throws -> Value {
    try await withCheckedThrowingContinuation { continuation in
        DispatchQueue.global().async {
            continuation.resume(with: Result { try work() })
        }
    }
}
