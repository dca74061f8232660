package io.kiln.collective;

import java.util.List;
import java.util.Locale;
import java.util.Objects;

import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Picks and opens a backend: {@code "ring"} (TCP, CPU), {@code "nccl"} (GPU) or {@code "auto"}
 * (NCCL when it loads on this node and the group has an NCCL unique id, else the ring).
 *
 * <p>All ranks of a group must end up on the same backend. The safe flow: the group's creator
 * (rank 0 or the coordinator) calls {@link #resolve(String)} once and, for NCCL,
 * {@link #ncclUniqueIdOrNull()}; it hands every rank the ring addresses and the id (null when
 * the ring was chosen); each rank then calls {@link #create(String, Spec)}.
 */
public final class CollectiveFactory {

    private static final Logger log = LoggerFactory.getLogger(CollectiveFactory.class);

    private CollectiveFactory() {
    }

    /** What a rank needs to join a group. {@code ncclUniqueId} may be null (ring only). */
    public record Spec(int rank, List<String> ringAddresses, byte[] ncclUniqueId, int cudaDevice,
                       CollectiveOptions options) {
        public Spec {
            Objects.requireNonNull(ringAddresses, "ringAddresses");
            Objects.requireNonNull(options, "options");
            ringAddresses = List.copyOf(ringAddresses);
        }

        public int worldSize() {
            return ringAddresses.size();
        }

        public static Spec ring(int rank, List<String> addresses, CollectiveOptions options) {
            return new Spec(rank, addresses, null, 0, options);
        }
    }

    /** A resolved backend ("ring" or "nccl") with the reason it was chosen. */
    public record Resolution(String backend, String reason) {
    }

    /**
     * Resolves "auto" | "ring" | "nccl" on this node. "nccl" throws {@link CollectiveException}
     * when NCCL cannot be used here; "auto" falls back to "ring" with the reason.
     */
    public static Resolution resolve(String backend) {
        String b = backend == null ? "auto" : backend.trim().toLowerCase(Locale.ROOT);
        switch (b) {
            case "ring":
                return new Resolution("ring", "requested");
            case "nccl": {
                String why = ncclUnavailableReason();
                if (why != null) {
                    throw new CollectiveException("collective backend 'nccl' was requested but NCCL cannot be used on"
                            + " this node: " + why);
                }
                return new Resolution("nccl", "requested; " + ncclDetail());
            }
            case "auto": {
                String why = ncclUnavailableReason();
                if (why != null) {
                    return new Resolution("ring", "NCCL unavailable (" + why + ")");
                }
                return new Resolution("nccl", ncclDetail());
            }
            default:
                throw new IllegalArgumentException("unknown collective backend '" + backend
                        + "' (expected auto, ring or nccl)");
        }
    }

    /** For the group creator: a fresh NCCL unique id, or null when NCCL cannot be used here. */
    public static byte[] ncclUniqueIdOrNull() {
        if (ncclUnavailableReason() != null) {
            return null;
        }
        return io.kiln.collective.nccl.NcclCollective.createUniqueId();
    }

    /** Opens this rank's collective. See the class comment for how ranks agree on the backend. */
    public static Collective create(String backend, Spec spec) {
        Objects.requireNonNull(spec, "spec");
        String b = backend == null ? "auto" : backend.trim().toLowerCase(Locale.ROOT);
        if (b.equals("auto")) {
            Resolution r = resolve("auto");
            if (r.backend().equals("nccl") && spec.ncclUniqueId() != null) {
                return openNccl(spec);
            }
            String why = r.backend().equals("nccl") ? "no NCCL unique id was supplied for this group" : r.reason();
            log.info("collective backend auto: {}; using the TCP ring (rank {}/{}, generation {})", why, spec.rank(),
                    spec.worldSize(), spec.options().generation());
            return RingCollective.open(spec.rank(), spec.ringAddresses(), spec.options());
        }
        Resolution r = resolve(b);
        if (r.backend().equals("nccl")) {
            if (spec.ncclUniqueId() == null) {
                throw new CollectiveException("collective backend 'nccl' needs the group's NCCL unique id (rank 0 creates"
                        + " it with NcclCollective.createUniqueId())");
            }
            return openNccl(spec);
        }
        return RingCollective.open(spec.rank(), spec.ringAddresses(), spec.options());
    }

    private static Collective openNccl(Spec spec) {
        return io.kiln.collective.nccl.NcclCollective.open(spec.rank(), spec.worldSize(), spec.ncclUniqueId(),
                spec.cudaDevice(), spec.options());
    }

    /** null when NCCL is usable, else why not. Never throws (missing jars, natives, GPU...). */
    static String ncclUnavailableReason() {
        try {
            io.kiln.collective.nccl.NcclCollective.Availability a = io.kiln.collective.nccl.NcclCollective.probe();
            return a.available() ? null : a.detail();
        } catch (Throwable t) { // NoClassDefFoundError when the JavaCPP jars are not on the class path
            return t.getClass().getSimpleName() + ": " + t.getMessage();
        }
    }

    private static String ncclDetail() {
        try {
            return io.kiln.collective.nccl.NcclCollective.probe().detail();
        } catch (Throwable t) {
            return String.valueOf(t);
        }
    }
}
