import Foundation
import NIOConcurrencyHelpers

/// Graph's JSON message resource, as far as a mail relay uses it.
/// - SeeAlso: https://learn.microsoft.com/graph/api/resources/message
struct M365SandboxGraphMessage: Codable, Sendable {
    struct Recipient: Codable, Sendable {
        struct EmailAddress: Codable, Sendable {
            var address: String?
            var name: String?
        }
        var emailAddress: EmailAddress
    }

    struct ItemBody: Codable, Sendable {
        var contentType: String?
        var content: String?
    }

    struct Header: Codable, Sendable {
        var name: String
        var value: String
    }

    var subject: String?
    var body: ItemBody?
    var from: Recipient?
    var sender: Recipient?
    var toRecipients: [Recipient]?
    var ccRecipients: [Recipient]?
    var bccRecipients: [Recipient]?
    var replyTo: [Recipient]?
    var internetMessageHeaders: [Header]?
    var attachments: [M365SandboxGraphAttachment]?

    /// Every recipient address, without duplicates.
    var recipientAddresses: [String] {
        var seen = Set<String>()
        return ((toRecipients ?? []) + (ccRecipients ?? []) + (bccRecipients ?? []))
            .compactMap(\.emailAddress.address)
            .filter { seen.insert($0.lowercased()).inserted }
    }

    /// Graph allows only custom headers (`x-` prefixed) in `internetMessageHeaders`.
    var invalidHeaderName: String? {
        internetMessageHeaders?.first { !$0.name.lowercased().hasPrefix("x-") }?.name
    }
}

/// A `#microsoft.graph.fileAttachment`.
struct M365SandboxGraphAttachment: Codable, Sendable {
    var odataType: String?
    var name: String?
    var contentType: String?
    var contentBytes: String?
    var isInline: Bool?
    var contentId: String?
    var size: Int?

    enum CodingKeys: String, CodingKey {
        case odataType = "@odata.type"
        case name, contentType, contentBytes, isInline, contentId, size
    }
}

/// The body of `createUploadSession`.
struct M365SandboxUploadSessionRequest: Codable, Sendable {
    struct AttachmentItem: Codable, Sendable {
        var attachmentType: String?
        var name: String?
        var size: Int
        var contentType: String?
        var isInline: Bool?
        var contentId: String?
    }
    var AttachmentItem: AttachmentItem
}

/// A draft in a mailbox, waiting for `send`.
struct M365SandboxDraft: Sendable {
    struct Attachment: Sendable {
        var id: String
        var name: String
        var contentType: String
        var isInline: Bool
        var contentId: String?
        var bytes: Data
    }

    var id: String
    var mailbox: String
    var message: M365SandboxGraphMessage
    var attachments: [Attachment] = []
    var createdAt: Date
}

/// An upload session: the attachment's bytes arrive in ranges.
struct M365SandboxUploadSession: Sendable {
    var key: String
    var draftID: String
    var mailbox: String
    var name: String
    var contentType: String
    var isInline: Bool
    var contentId: String?
    var size: Int
    var received: Data
    var expires: Date
}

/// Drafts and upload sessions, in memory (a relay sends a draft within seconds of creating it).
final class M365SandboxDrafts: Sendable {
    private struct State {
        var drafts: [String: M365SandboxDraft] = [:]
        var uploads: [String: M365SandboxUploadSession] = [:]
    }

    private let state = NIOLockedValueBox(State())

    func create(_ draft: M365SandboxDraft) {
        state.withLockedValue { $0.drafts[draft.id] = draft }
    }

    func draft(_ id: String, mailbox: String) -> M365SandboxDraft? {
        state.withLockedValue { state in
            guard let draft = state.drafts[id], draft.mailbox.caseInsensitiveCompare(mailbox) == .orderedSame else { return nil }
            return draft
        }
    }

    /// Adds an attachment; false when the draft is gone.
    func attach(_ attachment: M365SandboxDraft.Attachment, to id: String) -> Bool {
        state.withLockedValue { state in
            guard state.drafts[id] != nil else { return false }
            state.drafts[id]!.attachments.append(attachment)
            return true
        }
    }

    func remove(_ id: String) {
        _ = state.withLockedValue { $0.drafts.removeValue(forKey: id) }
    }

    func openUpload(_ session: M365SandboxUploadSession) {
        state.withLockedValue { $0.uploads[session.key] = session }
    }

    /// Runs `body` on the upload session under the lock.
    func withUpload<Result>(_ key: String, _ body: (inout M365SandboxUploadSession?) -> Result) -> Result {
        state.withLockedValue { state in
            var session = state.uploads[key]
            let result = body(&session)
            state.uploads[key] = session
            return result
        }
    }
}
