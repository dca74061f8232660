package io.kiln.collective;

/**
 * A collective failed: a peer closed or died, a frame was malformed, a call timed out, or a
 * backend could not be loaded. The message names this rank, the peer and the problem. The
 * collective that threw is unusable afterwards.
 */
public class CollectiveException extends RuntimeException {
    private static final long serialVersionUID = 1L;

    /** The peer rank the problem is attributed to, or -1 when none. */
    private final int peerRank;

    public CollectiveException(String message) {
        this(message, -1, null);
    }

    public CollectiveException(String message, Throwable cause) {
        this(message, -1, cause);
    }

    public CollectiveException(String message, int peerRank, Throwable cause) {
        super(message, cause);
        this.peerRank = peerRank;
    }

    /** The peer rank blamed for the failure, or -1 when it is not attributable to one peer. */
    public int peerRank() {
        return peerRank;
    }
}
