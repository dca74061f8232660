package io.kiln.collective;

import java.io.IOException;
import java.net.InetSocketAddress;
import java.nio.ByteBuffer;
import java.nio.channels.ServerSocketChannel;
import java.nio.channels.SocketChannel;

/** A hand-written ring member speaking the wire protocol with raw sockets, to inject bad frames. */
final class RoguePeer implements AutoCloseable {
    final int rank;
    final int world;
    final CollectiveOptions options;
    SocketChannel next;
    SocketChannel prev;

    RoguePeer(int rank, int world, CollectiveOptions options) {
        this.rank = rank;
        this.world = world;
        this.options = options;
    }

    /** Same handshake as RingCollective.open: connect+HELLO to next, accept+ACK prev, read ACK. */
    void join(ServerSocketChannel listener, String nextAddress) throws IOException {
        String[] hp = nextAddress.split(":");
        next = SocketChannel.open(new InetSocketAddress(hp[0], Integer.parseInt(hp[1])));
        ByteBuffer hello = ByteBuffer.allocate(Frames.HEADER_BYTES + Frames.HELLO_PAYLOAD_BYTES);
        Frames.put(hello, options.generation(), 0, 0, Frames.OP_HELLO, rank, Frames.HELLO_PAYLOAD_BYTES, world,
                Frames.PROTOCOL_VERSION);
        hello.position(Frames.HEADER_BYTES);
        hello.putInt(world).putInt(options.chunkBytes()).putInt(options.smallMessageBytes()).putInt(0);
        hello.flip();
        writeFully(next, hello);
        prev = listener.accept();
        ByteBuffer in = ByteBuffer.allocate(Frames.HEADER_BYTES);
        readFully(prev, in);
        readFully(prev, ByteBuffer.allocate(in.getInt(Frames.O_LENGTH))); // payload (maybe a shared-memory offer)
        ByteBuffer ack = ByteBuffer.allocate(Frames.HEADER_BYTES);
        // item 0: the rogue declines any shared-memory offer, so its links carry data over TCP
        Frames.put(ack, options.generation(), 0, 0, Frames.OP_ACK, rank, 0, world, Frames.PROTOCOL_VERSION);
        writeFully(prev, ack);
        ByteBuffer theirAck = ByteBuffer.allocate(Frames.HEADER_BYTES);
        readFully(next, theirAck);
        if (theirAck.getShort(Frames.O_OP) != Frames.OP_ACK) {
            throw new IOException("rogue was refused");
        }
    }

    void send(int gen, int seq, int item, short op, int length, int count, int aux, int payloadBytes)
            throws IOException {
        ByteBuffer b = ByteBuffer.allocate(Frames.HEADER_BYTES + payloadBytes);
        Frames.put(b, gen, seq, item, op, rank, length, count, aux);
        b.position(0).limit(b.capacity());
        writeFully(next, b);
    }

    static void writeFully(SocketChannel ch, ByteBuffer b) throws IOException {
        while (b.hasRemaining()) {
            ch.write(b);
        }
    }

    static void readFully(SocketChannel ch, ByteBuffer b) throws IOException {
        while (b.hasRemaining()) {
            if (ch.read(b) < 0) {
                throw new IOException("eof");
            }
        }
    }

    @Override
    public void close() throws IOException {
        if (next != null) {
            next.close();
        }
        if (prev != null) {
            prev.close();
        }
    }
}
