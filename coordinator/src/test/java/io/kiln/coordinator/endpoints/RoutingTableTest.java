package io.kiln.coordinator.endpoints;

import static org.junit.jupiter.api.Assertions.*;

import io.kiln.protocol.proto.EndpointConfig;
import io.kiln.protocol.proto.EndpointReplica;
import io.kiln.protocol.proto.EndpointVariant;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

class RoutingTableTest {
  private static EndpointReplica replica(String variant, String url) {
    return EndpointReplica.newBuilder().setVariant(variant).setUrl(url).build();
  }

  @Test
  void weightsTargetVariantRoundRobinAndInFlight() {
    RoutingTable t = new RoutingTable();
    assertTrue(t.acquire("e", null).isEmpty(), "no routes: nothing to serve");
    EndpointConfig c = EndpointConfig.newBuilder()
        .addVariants(EndpointVariant.newBuilder().setName("a").setWeight(3))
        .addVariants(EndpointVariant.newBuilder().setName("b").setWeight(1)).build();
    t.set("e", c, List.of(replica("a", "u1"), replica("a", "u2"), replica("b", "u3")));
    Map<String, Integer> hits = new HashMap<>();
    for (int i = 0; i < 4000; i++) {
      try (RoutingTable.Lease l = t.acquire("e", null).orElseThrow()) {
        hits.merge(l.target().url(), 1, Integer::sum);
      }
    }
    int a = hits.get("u1") + hits.get("u2");
    assertTrue(a > 2700 && a < 3300, "variant a gets about 3/4: " + hits);
    assertTrue(Math.abs(hits.get("u1") - hits.get("u2")) <= 1, "round robin within a variant: " + hits);
    assertEquals("u3", t.acquire("e", "b").orElseThrow().target().url());
    assertEquals(1, t.inFlight("u3"));
    assertEquals(1, t.endpointInFlight("e"));
    assertThrows(IllegalArgumentException.class, () -> t.acquire("e", "zz"));
    t.set("e", c, List.of(replica("a", "u1")));
    assertEquals("u1", t.acquire("e", null).orElseThrow().target().url(), "variant b has no replica: only a");
    assertTrue(t.acquire("e", "b").isEmpty());
  }
}
