package io.kiln.coordinator.endpoints;

import io.kiln.protocol.proto.EndpointConfig;
import io.kiln.protocol.proto.EndpointReplica;
import io.kiln.protocol.proto.EndpointVariant;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.ThreadLocalRandom;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.Consumer;

/**
 * The router's view of every endpoint: which replicas serve each variant, with what weight, and
 * how many requests each has in flight. Endpoint entities replace an endpoint's routes atomically
 * (a blue/green switch); the HTTP router reads them on every request. A replica leaves the routes
 * before it is stopped, and its counter tells the entity when its last request is done (drain).
 */
public final class RoutingTable {

  /** One replica's counters, shared by every route that names its URL. */
  public static final class Target {
    final String variant;
    final String url;
    final AtomicInteger inFlight = new AtomicInteger();
    final AtomicLong lastRequestNanos = new AtomicLong(System.nanoTime());
    final AtomicLong requests = new AtomicLong();

    Target(String variant, String url) {
      this.variant = variant;
      this.url = url;
    }

    public String url() {
      return url;
    }

    public String variant() {
      return variant;
    }

    public int inFlight() {
      return inFlight.get();
    }
  }

  /** A request's hold on a replica; {@link #close} once its response is complete. */
  public record Lease(Target target, AtomicInteger endpointInFlight) implements AutoCloseable {
    @Override
    public void close() {
      target.inFlight.decrementAndGet();
      endpointInFlight.decrementAndGet();
    }
  }

  private record VariantRoute(String name, double weight, List<Target> targets, AtomicInteger next) {}

  private record Routes(List<VariantRoute> variants, AtomicInteger inFlight) {}

  private final Map<String, Routes> routes = new ConcurrentHashMap<>();
  private final Map<String, Target> targets = new ConcurrentHashMap<>();
  private final Map<String, AtomicInteger> endpointInFlight = new ConcurrentHashMap<>();
  private final List<Consumer<String>> forgotten = new CopyOnWriteArrayList<>();

  /** Routes {@code endpoint}'s traffic to {@code replicas} from now on (atomically). */
  public void set(String endpoint, EndpointConfig config, List<EndpointReplica> replicas) {
    List<VariantRoute> vs = new ArrayList<>();
    for (EndpointVariant v : config.getVariantsList()) {
      List<Target> ts = new ArrayList<>();
      for (EndpointReplica r : replicas) {
        if (r.getVariant().equals(v.getName())) ts.add(targets.computeIfAbsent(r.getUrl(), u -> new Target(v.getName(), u)));
      }
      vs.add(new VariantRoute(v.getName(), v.getWeight(), List.copyOf(ts), new AtomicInteger()));
    }
    routes.put(endpoint, new Routes(List.copyOf(vs), endpointInFlight.computeIfAbsent(endpoint, e -> new AtomicInteger())));
  }

  public void remove(String endpoint) {
    routes.remove(endpoint);
  }

  public boolean has(String endpoint) {
    return routes.containsKey(endpoint);
  }

  /**
   * A replica for one request: of {@code targetVariant} when given, else of a variant drawn by
   * weight among those with replicas; round robin within the variant. Empty when none is ready.
   *
   * @throws IllegalArgumentException when {@code targetVariant} is not a variant of the endpoint
   */
  public Optional<Lease> acquire(String endpoint, String targetVariant) {
    Routes r = routes.get(endpoint);
    if (r == null) return Optional.empty();
    VariantRoute chosen = null;
    if (targetVariant != null) {
      for (VariantRoute v : r.variants) if (v.name.equals(targetVariant)) chosen = v;
      if (chosen == null) {
        throw new IllegalArgumentException("endpoint " + endpoint + " has no variant '" + targetVariant + "' (variants: "
            + String.join(", ", r.variants.stream().map(VariantRoute::name).toList()) + ")");
      }
    } else {
      double total = 0;
      for (VariantRoute v : r.variants) if (!v.targets.isEmpty()) total += v.weight;
      double x = ThreadLocalRandom.current().nextDouble() * total;
      for (VariantRoute v : r.variants) {
        if (v.targets.isEmpty()) continue;
        chosen = v;
        x -= v.weight;
        if (x < 0) break;
      }
    }
    if (chosen == null || chosen.targets.isEmpty()) return Optional.empty();
    Target t = chosen.targets.get(Math.floorMod(chosen.next.getAndIncrement(), chosen.targets.size()));
    t.inFlight.incrementAndGet();
    t.requests.incrementAndGet();
    t.lastRequestNanos.set(System.nanoTime());
    r.inFlight.incrementAndGet();
    return Optional.of(new Lease(t, r.inFlight));
  }

  /** The counters of the replica at {@code url} (a replica never routed to has none). */
  public Optional<Target> target(String url) {
    return Optional.ofNullable(targets.get(url));
  }

  /** Requests in flight to {@code url} (0 for an unknown replica). */
  public int inFlight(String url) {
    Target t = targets.get(url);
    return t == null ? 0 : t.inFlight.get();
  }

  /** Nanoseconds since {@code url} last got a request (since it was routed, if never). */
  public long idleNanos(String url) {
    Target t = targets.get(url);
    return t == null ? Long.MAX_VALUE : System.nanoTime() - t.lastRequestNanos.get();
  }

  /** Requests in flight through the router to {@code endpoint}. */
  public int endpointInFlight(String endpoint) {
    AtomicInteger n = endpointInFlight.get(endpoint);
    return n == null ? 0 : n.get();
  }

  /** Forgets a stopped replica's counters (and tells the listeners, which close their connections to it). */
  public void forget(String url) {
    targets.remove(url);
    for (Consumer<String> l : forgotten) l.accept(url);
  }

  /** Calls {@code listener} with each replica URL {@link #forget} is called with from now on. */
  public void onForget(Consumer<String> listener) {
    forgotten.add(listener);
  }
}
