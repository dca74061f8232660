package io.kiln.protocol.cluster;

/**
 * Marker for Kiln's own (non-protobuf) messages that cross nodes. Bound to {@link KilnSerializer}
 * in {@code reference.conf}; generated protobuf messages are bound directly.
 */
public interface KilnWireMessage {}
