import ArgumentParser
import AsyncHTTPClient
import Foundation
import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import RelayAdmin
import RelayCore
import RelayServer
import RelayStorage

/// What `queue` and `trace` do, whichever way they reach the queue: through a
/// running relay's admin API, or by opening its storage when no relay runs.
/// Both answer in the API's objects, so both print the same.
protocol RelayQueueAccess: Sendable {
    func search(_ query: RelayTraceQuery) async throws(RelayCommandFailure) -> RelayAdminMessagePage
    /// nil: no such message.
    func timeline(id: RelayQueueID) async throws(RelayCommandFailure) -> RelayAdminTimeline?
    func apply(_ action: RelayQueueAction, to id: RelayQueueID) async throws(RelayCommandFailure) -> RelayAdminMessage
    func close() async
}

/// A failure the command reports on standard error and exits 1 for (not found,
/// refused, storage unreachable); usage errors exit 2 through ArgumentParser.
struct RelayCommandFailure: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// `--config` / `--data-directory`, shared by `queue`, `trace`, `doctor` and `connector-script`.
struct RelayAccessOptions: ParsableArguments {
    @Option(name: .shortAndLong, help: "Configuration file (YAML). Default: ./m365-relay.yaml if it exists, else the built-in sandbox setup.")
    var config: String?

    @Option(help: "Data directory of the built-in sandbox setup (ignored with --config).")
    var dataDirectory: String = "m365-relay-data"

    static let defaultConfigurationFile = "m365-relay.yaml"

    /// The file to read: `--config`, else `./m365-relay.yaml` if it exists; nil means the built-in sandbox setup.
    var configurationFile: String? {
        config ?? (FileManager.default.fileExists(atPath: Self.defaultConfigurationFile) ? Self.defaultConfigurationFile : nil)
    }

    func loadConfiguration() throws(RelayCommandFailure) -> RelayConfiguration {
        guard let path = configurationFile else { return RelayConfiguration.builtInSandbox(dataDirectory: dataDirectory) }
        do {
            return try RelayConfiguration.load(path: path)
        } catch {
            throw RelayCommandFailure("\(error)")
        }
    }

    /// The admin API when a relay answers at `admin.address`; else the storage itself.
    func open() async throws(RelayCommandFailure) -> any RelayQueueAccess {
        let configuration = try loadConfiguration()
        var apiAddress: RelayEndpoint?
        if let admin = configuration.admin {
            let address = RelayAdminHTTPAccess.connectableAddress(admin.address)
            if await RelayAdminHTTPAccess.isListening(address) {
                // Read once: a token file is not read again for every page of a long listing.
                return RelayAdminHTTPAccess(address: address, token: admin.token.map { source in Result { () throws(RelayStartupError) in try RelaySecrets.read(source) } })
            }
            apiAddress = admin.address
        }
        return try RelayStorageAccess.open(configuration.storage, adminAddress: apiAddress)
    }

    /// Opens the queue, runs `body`, closes it whatever happened.
    func withQueue<Value>(_ body: (any RelayQueueAccess) async throws -> Value) async throws -> Value {
        let queue = try await open()
        let result: Result<Value, any Error>
        do {
            result = .success(try await body(queue))
        } catch {
            result = .failure(error)
        }
        await queue.close()
        return try result.get()
    }
}

// MARK: - Through the admin API

struct RelayAdminHTTPAccess: RelayQueueAccess {
    let address: RelayEndpoint
    /// The admin token, or why it could not be read.
    let token: Result<String, RelayStartupError>?

    /// A wildcard bind is reached through loopback.
    static func connectableAddress(_ address: RelayEndpoint) -> RelayEndpoint {
        switch address.host {
        case "0.0.0.0": RelayEndpoint(host: "127.0.0.1", port: address.port)
        case "::": RelayEndpoint(host: "::1", port: address.port)
        default: address
        }
    }

    /// Whether something accepts connections there. A refused connection means
    /// no relay runs (or its admin server is off): the caller opens storage.
    static func isListening(_ address: RelayEndpoint) async -> Bool {
        do {
            let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .connectTimeout(.seconds(3))
                .connect(host: address.host, port: address.port).get()
            try? await channel.close()
            return true
        } catch {
            return false
        }
    }

    var baseURL: String { "http://\(address)" }

    func search(_ query: RelayTraceQuery) async throws(RelayCommandFailure) -> RelayAdminMessagePage {
        var components = URLComponents()
        components.queryItems = RelayTraceQueryParsing.parameters(of: query).map { URLQueryItem(name: $0.name, value: $0.value) }
        // `+` is a space in a query string; URLComponents leaves it alone.
        let queryString = (components.percentEncodedQuery ?? "").replacingOccurrences(of: "+", with: "%2B")
        let (status, body) = try await request(.GET, "/api/v1/messages?" + queryString)
        guard status == 200 else { throw failure(status, body) }
        return try decode(RelayAdminMessagePage.self, body)
    }

    func timeline(id: RelayQueueID) async throws(RelayCommandFailure) -> RelayAdminTimeline? {
        let (status, body) = try await request(.GET, "/api/v1/messages/\(id.rawValue)")
        if status == 404 { return nil }
        guard status == 200 else { throw failure(status, body) }
        return try decode(RelayAdminTimeline.self, body)
    }

    func apply(_ action: RelayQueueAction, to id: RelayQueueID) async throws(RelayCommandFailure) -> RelayAdminMessage {
        let (status, body) =
            action == .delete
            ? try await request(.DELETE, "/api/v1/messages/\(id.rawValue)")
            : try await request(.POST, "/api/v1/messages/\(id.rawValue)/\(action.rawValue)")
        guard status == 200 else { throw failure(status, body) }
        return try decode(RelayAdminMessage.self, body)
    }

    func close() async {}

    private func request(_ method: HTTPMethod, _ path: String) async throws(RelayCommandFailure) -> (UInt, Data) {
        var request = HTTPClientRequest(url: baseURL + path)
        request.method = method
        var tokenProblem: String?
        switch token {
        case .success(let value)?:
            request.headers.add(name: "Authorization", value: "Bearer \(value)")
        case .failure(let error)?:
            // Perhaps not needed (a loopback relay without a token); if it is, the 401 below says why.
            tokenProblem = error.description
        case nil:
            break
        }
        do {
            let response = try await HTTPClient.shared.execute(request, timeout: .seconds(30))
            let body = try await response.body.collect(upTo: 64 * 1024 * 1024)
            if response.status == .unauthorized {
                let reason = tokenProblem.map { "cannot read its token: \($0)" } ?? "check admin.token_file"
                throw RelayCommandFailure("the admin API at \(address) refused the request (401): \(reason)")
            }
            return (response.status.code, Data(buffer: body))
        } catch let error as RelayCommandFailure {
            throw error
        } catch {
            throw RelayCommandFailure("the admin API at \(address) did not answer: \(error)")
        }
    }

    private func failure(_ status: UInt, _ body: Data) -> RelayCommandFailure {
        if let error = try? RelayAdminJSON.decode(RelayAdminErrorBody.self, from: body) {
            return RelayCommandFailure(error.error)
        }
        return RelayCommandFailure("the admin API at \(address) answered \(status)")
    }

    private func decode<Value: Decodable>(_ type: Value.Type, _ body: Data) throws(RelayCommandFailure) -> Value {
        do {
            return try RelayAdminJSON.decode(type, from: body)
        } catch {
            throw RelayCommandFailure("the admin API at \(address) answered something unexpected: \(error)")
        }
    }
}

// MARK: - Directly in storage

/// The queue opened by this process, when no relay runs. The embedded queue
/// is locked by the relay that has it open, so this only works with the relay
/// stopped; with it running, the admin API is the way in.
struct RelayStorageAccess: RelayQueueAccess {
    let store: SQLiteQueueStore
    /// Recorded in the timeline as who acted.
    let actor = "cli uid \(getuid())"

    static func open(_ storage: RelayConfiguration.Storage, adminAddress: RelayEndpoint?) throws(RelayCommandFailure) -> RelayStorageAccess {
        let path: String
        switch storage.location {
        case .sqlite(let sqlitePath): path = sqlitePath
        case .postgres: throw RelayCommandFailure("storage: PostgreSQL is not available in this version; use sqlite:PATH")
        }
        // Opening creates a database; a command that only looks must not leave an empty one behind.
        guard FileManager.default.fileExists(atPath: path) else {
            throw RelayCommandFailure(
                "no queue at \(path): nothing was received yet, or --config names another relay"
                    + (adminAddress.map { " (and no relay answers at admin address \($0))" } ?? ""))
        }
        var logger = Logger(label: "m365-relay.queue") { StreamLogHandler.standardError(label: $0) }
        logger.logLevel = .error
        do {
            return RelayStorageAccess(store: try SQLiteQueueStore(path: path, logger: logger))
        } catch let error as RelayStorageError where error.code == .unreachable {
            if let adminAddress {
                throw RelayCommandFailure(
                    "the queue \(path) is in use by a running m365-relay, and its admin API does not answer at \(adminAddress); check admin.address, or stop the relay")
            }
            throw RelayCommandFailure(
                "the queue \(path) is in use by a running m365-relay whose admin API is off; enable it with an `admin` section in its configuration (admin:\n  address: \"127.0.0.1:8025\") and restart it")
        } catch {
            throw RelayCommandFailure("storage \(path) is not usable: \(error)")
        }
    }

    func search(_ query: RelayTraceQuery) async throws(RelayCommandFailure) -> RelayAdminMessagePage {
        do {
            return RelayAdminMessagePage(try await store.searchTrace(query))
        } catch {
            throw RelayCommandFailure(Self.describe(error))
        }
    }

    func timeline(id: RelayQueueID) async throws(RelayCommandFailure) -> RelayAdminTimeline? {
        do {
            return try await store.timeline(id: id).map(RelayAdminTimeline.init)
        } catch {
            throw RelayCommandFailure(Self.describe(error))
        }
    }

    func apply(_ action: RelayQueueAction, to id: RelayQueueID) async throws(RelayCommandFailure) -> RelayAdminMessage {
        do {
            return RelayAdminMessage(try await store.apply(action, to: id, by: actor, now: Date()))
        } catch {
            throw RelayCommandFailure(Self.describe(error))
        }
    }

    func close() async {
        store.close()
    }

    private static func describe(_ error: any Error) -> String {
        if let error = error as? RelayQueueActionError { return error.description }
        if let error = error as? RelayStorageError, error.code == .invalidRequest { return error.detail }
        return "storage failed: \(error)"
    }
}
