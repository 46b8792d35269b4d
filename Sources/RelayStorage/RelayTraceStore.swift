import Foundation
import RelayCore

/// The message trace and the administrator's queue operations, kept with the
/// queue (same database, same transactions where they describe the same change).
public protocol RelayTraceStore: Sendable {
    /// Messages matching `query`, newest first, one page.
    func searchTrace(_ query: RelayTraceQuery) async throws -> RelayTracePage

    /// One message and every event of its life; nil when unknown or pruned.
    func timeline(id: RelayQueueID) async throws -> RelayTraceTimeline?

    /// Attempts by outcome per hour, for hours starting in `since ..< until`
    /// (every hour present, zeros included, oldest first).
    func flow(since: Date, until: Date) async throws -> [RelayFlowHour]

    func queueStatistics() async throws -> RelayQueueStatistics

    /// Applies an administrator's action and records it in the timeline with `by`
    /// (e.g. `admin-api 127.0.0.1`, `cli uid 0`).
    /// - retry: a queued or deferred message is due now.
    /// - hold: a queued message is not delivered until released. A message
    ///   being delivered right now is held after that attempt, unless the attempt finishes it.
    /// - release: a held message is queued and due now.
    /// - delete: content removed, status `deleted`; refused (`.busy`) while an attempt holds it.
    /// Throws ``RelayQueueActionError``.
    func apply(_ action: RelayQueueAction, to id: RelayQueueID, by: String, now: Date) async throws -> RelayTraceSummary

    /// Adds an event to a message's timeline (e.g. `bounced` with the DSN's id).
    func recordEvent(_ event: RelayTraceEvent, for id: RelayQueueID) async throws

    /// Removes finished messages (delivered, failed, deleted) that finished
    /// before `before`, with their events, in batches of `batchSize` so that
    /// no transaction holds the writer long; and the content kept by
    /// `trace.keep_bodies` of messages that finished before `bodiesBefore`.
    /// Returns the number of messages removed.
    func prune(before: Date, bodiesBefore: Date, batchSize: Int) async throws -> Int
}
