import Foundation
import RelayCore

/// A MIME message turned into Graph's JSON message resource, for the
/// draft-plus-upload-session path of messages over the request limit.
///
/// Pure: what goes in the draft, which attachments ride inline in it
/// (`#microsoft.graph.fileAttachment` with `contentBytes`) while the
/// request stays under the limit, and which follow through their own requests.
/// - SeeAlso: M365.md, Quotas (Graph request body); Graph `message` resource,
///   `attachment: createUploadSession`
struct GraphDraftMessage {
    struct Attachment {
        var name: String
        var contentType: String
        var isInline: Bool
        var contentID: String?
        var bytes: [UInt8]

        /// The upload session's `AttachmentItem`.
        var uploadItem: [String: Any] {
            var item: [String: Any] = [
                "attachmentType": "file", "name": name, "size": bytes.count, "contentType": contentType, "isInline": isInline,
            ]
            if let contentID { item["contentId"] = contentID }
            return ["AttachmentItem": item]
        }

        /// A `fileAttachment` with its bytes, for the draft or `POST .../attachments`.
        var fileAttachment: [String: Any] {
            var item: [String: Any] = [
                "@odata.type": "#microsoft.graph.fileAttachment", "name": name, "contentType": contentType,
                "isInline": isInline, "contentBytes": Data(bytes).base64EncodedString(),
            ]
            if let contentID { item["contentId"] = contentID }
            return item
        }

        /// What the attachment adds to a JSON request: its base64 plus the property names.
        var encodedSize: Int { (bytes.count + 2) / 3 * 4 + name.utf8.count + contentType.utf8.count + 200 }
    }

    /// The draft's JSON object, inline attachments included.
    var resource: [String: Any]
    /// Attachments that did not fit in the draft request.
    var remaining: [Attachment]

    /// Attachments up to this size go in one `POST .../attachments`; larger
    /// ones need an upload session (Graph: 3 MB).
    static let singleRequestAttachmentLimit = 3 * 1024 * 1024

    /// Builds the draft for `message`.
    ///
    /// - Parameters:
    ///   - extraBcc: envelope recipients the headers do not name, added as Bcc.
    ///   - requestLimit: the most the draft request may carry.
    init(message: RelayMIMEPart, extraBcc: [String], requestLimit: Int) {
        let headers = message.headers
        var resource: [String: Any] = [:]
        resource["subject"] = headers.value("Subject").map(RelayEncodedWords.decode) ?? ""

        // The body: the first html part that is not an attachment, else the first text part.
        let leaves = message.leaves
        let texts = leaves.filter { !$0.isAttachment && $0.contentType.value.hasPrefix("text/") }
        let bodyPart = texts.first { $0.contentType.value == "text/html" } ?? texts.first { $0.contentType.value == "text/plain" }
        if let bodyPart {
            resource["body"] = ["contentType": bodyPart.contentType.value == "text/html" ? "html" : "text", "content": bodyPart.text]
        } else {
            resource["body"] = ["contentType": "text", "content": ""]
        }

        func recipients(_ addresses: [RelayHeaderAddress]) -> [[String: Any]] {
            addresses.map { address in
                var email: [String: Any] = ["address": address.address]
                if let name = address.displayName { email["name"] = RelayEncodedWords.decode(name) }
                return ["emailAddress": email]
            }
        }
        if let from = headers.addresses("From").first { resource["from"] = recipients([from])[0] }
        let to = headers.addresses("To"), cc = headers.addresses("Cc")
        let bcc = headers.addresses("Bcc") + extraBcc.map { RelayHeaderAddress(address: $0) }
        if !to.isEmpty { resource["toRecipients"] = recipients(to) }
        if !cc.isEmpty { resource["ccRecipients"] = recipients(cc) }
        if !bcc.isEmpty { resource["bccRecipients"] = recipients(bcc) }
        let replyTo = headers.addresses("Reply-To")
        if !replyTo.isEmpty { resource["replyTo"] = recipients(replyTo) }
        // Graph accepts only custom headers here; the others it sets itself.
        let custom = headers.fields.filter { $0.name.lowercased().hasPrefix("x-") }
        if !custom.isEmpty {
            resource["internetMessageHeaders"] = custom.map { ["name": $0.name, "value": $0.value] }
        }

        var attachments: [Attachment] = []
        for leaf in leaves where leaf.isAttachment {
            let type = leaf.contentType
            let inline = leaf.isInline || (leaf.contentID != nil && leaf.contentDisposition?.value != "attachment")
            attachments.append(Attachment(
                name: leaf.filename ?? Self.defaultName(for: type.value), contentType: type.value,
                isInline: inline, contentID: leaf.contentID, bytes: leaf.decodedBody))
        }
        var budget = requestLimit - Self.jsonSize(resource) - 64
        var included: [[String: Any]] = []
        var remaining: [Attachment] = []
        for attachment in attachments {
            if attachment.encodedSize <= budget {
                included.append(attachment.fileAttachment)
                budget -= attachment.encodedSize
            } else {
                remaining.append(attachment)
            }
        }
        if !included.isEmpty { resource["attachments"] = included }
        self.resource = resource
        self.remaining = remaining
    }

    var json: Data { (try? JSONSerialization.data(withJSONObject: resource)) ?? Data("{}".utf8) }

    static func jsonSize(_ object: [String: Any]) -> Int {
        (try? JSONSerialization.data(withJSONObject: object).count) ?? 0
    }

    static func defaultName(for type: String) -> String {
        switch type {
        case "message/rfc822": "message.eml"
        case "text/calendar": "invite.ics"
        default: "attachment"
        }
    }
}
