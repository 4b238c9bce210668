/// A run of values encoded one by one, so that one value that cannot be encoded or decoded
/// costs only its own item: the inputs of a task (unless they travel as raw bytes) and the
/// outcomes of a result.
///
/// ```
/// u64 fixed   B, the byte count of the values
/// B bytes     each value's BinaryCodec encoding, back to back
/// per item    tag u8: 0 value:   its byte count (len)
///                     1 threw:   the error's type (string), its description (string)
///                     2 failed:  a MultiprocessingError code (string), message (string)
/// ```
///
/// The table after the values says where each one starts, so a reader decodes any item
/// alone (a narrowed task decodes only the items it runs) and a value that fails to
/// decode does not hide the ones after it. The table is written last because the values'
/// sizes are known only once they are encoded; the fixed-width count in front is patched.
enum ItemizedValues {
    static let valueTag: UInt8 = 0
    static let threwTag: UInt8 = 1
    static let failedTag: UInt8 = 2
    /// Room kept in a frame, beyond its values, for the message header and the table.
    static let frameHeadroom = 4096

    /// One item's outcome in the table.
    enum Entry: Equatable {
        /// A value of `byteCount` bytes.
        case value(byteCount: Int)
        /// The function threw: the error's type and description.
        case threw(type: String, message: String)
        /// The library could not produce or carry the value: a code and a message.
        case failed(code: String, message: String)
    }

    /// Writes values into a ``ByteWriter`` one at a time, then the table.
    struct Writer {
        private let start: Int
        private var entries: [Entry] = []
        private(set) var failedCount = 0

        /// Starts a run of values at the writer's end.
        init(_ writer: inout ByteWriter, reservingCapacity items: Int = 0) {
            start = writer.count
            writer.write(fixed: UInt64(0))
            entries.reserveCapacity(items)
        }

        /// The bytes of values written so far.
        func valueBytes(_ writer: ByteWriter) -> Int { writer.count - start - 8 }

        /// What ``append(_:into:limit:)`` did with a value.
        enum Appended {
            /// The value is in the run.
            case value
            /// It could not be encoded; nothing was written.
            case unencodable(MultiprocessingError)
            /// Its `bytes` would take the run past the limit; nothing was written. `alone`:
            /// it is too large even for a run of its own.
            case tooLarge(bytes: Int, alone: Bool)
        }

        /// Encodes `value` into the run, keeping the run's values within `limit` bytes less
        /// ``frameHeadroom``. A value that cannot be encoded or does not fit leaves the
        /// writer as it was: the caller records the item's entry (or ends the run).
        mutating func append<T: Encodable>(_ value: T, into writer: inout ByteWriter, limit: Int) -> Appended {
            let before = writer.count
            do {
                try BinaryCodec.encode(value, into: &writer)
            } catch {
                return .unencodable(error)
            }
            let size = writer.count - before
            guard valueBytes(writer) + frameHeadroom <= limit else {
                writer.bytes.removeLast(size)
                return .tooLarge(bytes: size, alone: size + frameHeadroom > limit)
            }
            entries.append(.value(byteCount: size))
            return .value
        }

        /// Records an item whose function threw.
        mutating func appendThrew(type: String, message: String) {
            entries.append(.threw(type: type, message: message))
            failedCount += 1
        }

        /// Records an item the library could not carry.
        mutating func appendFailure(_ error: MultiprocessingError) {
            entries.append(.failed(code: error.code.description, message: error.message))
            failedCount += 1
        }

        /// Patches the byte count and writes the table.
        func finish(into writer: inout ByteWriter) {
            let count = UInt64(writer.count - start - 8)
            withUnsafeBytes(of: count.littleEndian) { raw in
                for i in 0..<8 { writer.bytes[start + i] = raw[i] }
            }
            for entry in entries {
                switch entry {
                case .value(let byteCount):
                    writer.write(valueTag)
                    writer.write(length: byteCount)
                case .threw(let type, let message):
                    writer.write(threwTag)
                    writer.write(string: type)
                    writer.write(string: message)
                case .failed(let code, let message):
                    writer.write(failedTag)
                    writer.write(string: code)
                    writer.write(string: message)
                }
            }
        }
    }

    /// Where each item of a run is: read from the table, checked against the bytes.
    struct Table {
        /// Each item's entry, in order.
        let entries: [Entry]
        /// For items with a value, the offset of its bytes in the buffer read.
        let offsets: [Int]

        /// Reads the run of `count` items starting at `reader`'s offset; the table must end
        /// exactly at the end of the buffer.
        init(_ reader: inout ByteReader, count: Int) throws(MultiprocessingError) {
            let declared = try reader.read(fixed: UInt64.self)
            guard declared <= UInt64(reader.remaining) else {
                throw MultiprocessingError(
                    .malformedFrame, "a run of items says \(declared) bytes of values, but \(reader.remaining) are left"
                )
            }
            var position = reader.offset
            let valuesEnd = position + Int(declared)
            _ = try reader.readBytes(Int(declared), "the items' values")
            var entries: [Entry] = []
            var offsets: [Int] = []
            entries.reserveCapacity(min(count, reader.remaining))
            offsets.reserveCapacity(min(count, reader.remaining))
            for _ in 0..<count {
                let tag = try reader.readByte("an item's tag")
                switch tag {
                case valueTag:
                    let declaredCount = try reader.readVarint()
                    guard declaredCount <= UInt64(valuesEnd - position) else {
                        throw MultiprocessingError(.malformedFrame, "an item's value runs past the values of its run")
                    }
                    let byteCount = Int(declaredCount)
                    entries.append(.value(byteCount: byteCount))
                    offsets.append(position)
                    position += byteCount
                case threwTag:
                    entries.append(.threw(type: try reader.readString(), message: try reader.readString()))
                    offsets.append(position)
                case failedTag:
                    entries.append(.failed(code: try reader.readString(), message: try reader.readString()))
                    offsets.append(position)
                default:
                    throw MultiprocessingError(.malformedFrame, "an item has an unknown tag \(tag)")
                }
            }
            guard position == valuesEnd, reader.isAtEnd else {
                throw MultiprocessingError(
                    .malformedFrame, "a run of \(count) items does not account for all of its bytes")
            }
            self.entries = entries
            self.offsets = offsets
        }

        /// Decodes item `index`'s value from `buffer` (the one the table was read from).
        func decode<T: Decodable>(_ type: T.Type, at index: Int, in buffer: UnsafeRawBufferPointer)
            throws(MultiprocessingError) -> T
        {
            guard case .value(let byteCount) = entries[index] else {
                throw MultiprocessingError(.malformedFrame, "item \(index) of a run has no value")
            }
            let start = offsets[index]
            var reader = ByteReader(UnsafeRawBufferPointer(rebasing: buffer[start..<(start + byteCount)]))
            let value = try BinaryCodec.decode(T.self, from: &reader)
            guard reader.isAtEnd else {
                throw MultiprocessingError(
                    .decodingFailed,
                    "decoding a \(T.self) read \(reader.offset) of its \(byteCount) bytes: the type's Decodable code does not read what its Encodable code wrote"
                )
            }
            return value
        }
    }

    /// Whether `[T]` travels as raw bytes (fixed-width numbers and SIMD vectors of them):
    /// then a chunk is one raw copy instead of a run of items. Raw values cannot fail to
    /// encode or decode.
    static func isRaw<T>(_ type: T.Type) -> Bool {
        [T].self is any _PODArrayCodable.Type
    }
}
