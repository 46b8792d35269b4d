import Hummingbird
import NIOCore

/// The admin server's request context: Hummingbird's core storage plus the
/// peer's address, which names who acted in the trace (`by`) and in logs.
public struct RelayAdminRequestContext: RequestContext, RemoteAddressRequestContext {
    public var coreContext: CoreRequestContextStorage
    public let remoteAddress: SocketAddress?

    public init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        remoteAddress = source.channel.remoteAddress
    }
}
