/// Several arguments of a function, as one `Codable` input: the input type of a function
/// used with ``ProcessPool/starmap(_:_:chunkSize:progress:)`` (Python's `Pool.starmap`).
///
/// ```swift
/// struct Power: ParallelFunction {
///     func callAsFunction(_ args: Arguments<Int, Int>) -> Int {
///         let (base, exponent) = args.values
///         return (0..<exponent).reduce(1) { product, _ in product * base }
///     }
/// }
/// let powers = try await pool.starmap(Power(), [(2, 10), (3, 2)])   // [1024, 9]
/// ```
///
/// Encoded as the values one after another, no field names.
public struct Arguments<each Value: Codable & Sendable>: Codable, Sendable {
    /// The arguments, as a tuple.
    public var values: (repeat each Value)

    /// Wraps arguments.
    public init(_ values: repeat each Value) {
        self.values = (repeat each values)
    }

    /// Encodes the arguments in order into an unkeyed container.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.unkeyedContainer()
        for value in repeat each values {
            try container.encode(value)
        }
    }

    /// Decodes the arguments in order from an unkeyed container.
    public init(from decoder: any Decoder) throws {
        var container = try decoder.unkeyedContainer()
        values = (repeat try container.decode((each Value).self))
    }
}
