import Testing

@testable import Multiprocessing
