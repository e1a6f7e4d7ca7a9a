import NIOCore

/// Runs an action once, when its channel becomes active: the moment an accepted client may be answered.
final class ActivationHandler: ChannelInboundHandler {
    typealias InboundIn = NIOAny

    private var action: (() -> Void)?

    init(_ action: @escaping () -> Void) {
        self.action = action
    }

    func channelActive(context: ChannelHandlerContext) {
        let action = self.action
        self.action = nil
        action?()
        context.fireChannelActive()
        // Done: leave the pipeline, so later events have one handler fewer to pass.
        context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
    }
}
