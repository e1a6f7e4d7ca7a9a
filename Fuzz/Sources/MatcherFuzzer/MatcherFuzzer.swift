import Foundation
import FuzzSupport

@testable import Tapedeck

/// libFuzzer's entry point: the bytes as a catalog and the traffic of clients replayed against it.
@_cdecl("LLVMFuzzerTestOneInput")
public func testOneInput(_ start: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    runHarness(start, count) { MatcherFuzzing.run($0) }
}
