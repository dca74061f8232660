package io.kiln.coordinator.endpoints;

import static org.junit.jupiter.api.Assertions.*;

import com.fasterxml.jackson.databind.JsonNode;
import io.kiln.coordinator.api.ApiJson;
import io.kiln.protocol.proto.EndpointConfig;
import io.kiln.protocol.proto.EndpointCreated;
import io.kiln.protocol.proto.EndpointEvent;
import io.kiln.protocol.proto.EndpointFailed;
import io.kiln.protocol.proto.EndpointReplica;
import io.kiln.protocol.proto.EndpointReplicasReady;
import io.kiln.protocol.proto.EndpointUpdateStarted;
import io.kiln.protocol.proto.EndpointVariant;
import org.junit.jupiter.api.Test;

class EndpointRequestTest {
  private static JsonNode json(String s) throws Exception {
    return ApiJson.MAPPER.readTree(s);
  }

  private static String refusal(String body) throws Exception {
    EndpointException e = assertThrows(EndpointException.class, () -> EndpointRequest.parse(json(body), null));
    assertEquals(EndpointException.Kind.INVALID, e.kind());
    return e.getMessage();
  }

  @Test
  void multiModelAndMemoryBecomeTheReplicasCommandLine() throws Exception {
    EndpointRequest r = EndpointRequest.parse(json("""
        {"name": "mm", "memoryMb": 1024, "idleTimeout": "2s", "variants": [{"modelUri": "/srv/models", "multiModel": true}]}"""), null);
    assertTrue(r.variants().get(0).multiModel());
    assertEquals(1024, r.memoryMb());
    EndpointConfig c = EndpointConfig.newBuilder().setMemoryMb(1024).setIdleTimeoutMs(2000).addVariants(EndpointVariant.newBuilder()
        .setName("primary").setModelUri("file:///srv/models").setMultiModel(true).setInstances(1)).build();
    var spec = ReplicaLauncher.spec("mm", 3, c, c.getVariants(0));
    assertEquals("io.kiln.deploy.ServeMain", spec.getMainClass());
    assertTrue(spec.getId().startsWith("endpoint/mm/g3/primary/"), spec.getId());
    String args = String.join(" ", spec.getArgsList());
    assertTrue(args.contains("--multi-model file:///srv/models") && args.contains("--preload false")
        && args.contains("--host {worker-host}") && args.contains("--idle-timeout 2000ms") && args.contains("--memory-budget-mb 512"), args);
    assertEquals(1024, spec.getMemoryMb());
    assertTrue(spec.getJvmArgsList().contains("-Xmx512m"), spec.getJvmArgsList().toString());
    assertFalse(spec.getEnvMap().containsKey("KILN_TOKEN"), "the token is added at launch, never in a logged spec");
    assertTrue(refusal("{\"name\": \"x\", \"variants\": [{\"modelGroup\": \"g\", \"multiModel\": true}]}").contains("modelUri prefix"));
    assertTrue(refusal("{\"name\": \"x\", \"memoryMb\": 10, \"variants\": [{\"modelUri\": \"/m\"}]}").contains("memoryMb"));
    assertTrue(refusal("{\"name\": \"x\", \"variants\": [{\"modelUri\": \"/m\", \"multiModel\": \"yes\"}]}").contains("true or false"));
  }

  @Test
  void parsesVariantsAndOptions() throws Exception {
    EndpointRequest r = EndpointRequest.parse(json("""
        {"name": "churn", "idleTimeout": "90s", "maxConcurrency": 8, "dataCapture": {"uri": "file:/tmp/cap", "percent": 10},
         "variants": [{"name": "a", "modelGroup": "g", "version": "latestApproved", "weight": 3, "instances": 2, "maxInstances": 4},
                      {"name": "b", "modelUri": "/srv/m", "weight": 1}]}"""), null);
    assertEquals(90_000, r.idleTimeoutMs());
    assertEquals(8, r.maxConcurrency());
    assertEquals(new EndpointRequest.Variant("a", "", "g", 0, 3, 2, 4), r.variants().get(0));
    assertEquals("file:///srv/m", r.variants().get(1).modelUri());
    assertEquals(1, r.variants().get(1).maxInstances());
    assertEquals(7, EndpointRequest.parse(json("{\"variants\": [{\"modelGroup\": \"g\", \"version\": 7}]}"), "x")
        .variants().get(0).version());
  }

  @Test
  void refusesBadRequestsWithReasons() throws Exception {
    assertTrue(refusal("{\"name\": \"a b\", \"variants\": [{\"modelUri\": \"/m\"}]}").contains("name 'a b' is invalid"));
    assertTrue(refusal("{\"name\": \"e\", \"variants\": []}").contains("variants is required"));
    assertTrue(refusal("{\"name\": \"e\", \"variants\": [{\"modelUri\": \"/m\", \"modelGroup\": \"g\"}]}").contains("exactly one"));
    assertTrue(refusal("{\"name\": \"e\", \"variants\": [{\"modelGroup\": \"g\", \"version\": 0}]}").contains("version"));
    assertTrue(refusal("{\"name\": \"e\", \"variants\": [{\"modelUri\": \"/m\", \"weight\": 0}]}").contains("sum to 0"));
    assertTrue(refusal("{\"name\": \"e\", \"variants\": [{\"modelUri\": \"/m\", \"instances\": 3, \"maxInstances\": 2}]}")
        .contains("below instances"));
    assertTrue(refusal("{\"name\": \"e\", \"variants\": [{\"name\": \"v\", \"modelUri\": \"/m\"}, {\"name\": \"v\", \"modelUri\": \"/n\"}]}")
        .contains("used twice"));
    assertTrue(refusal("{\"name\": \"e\", \"colour\": 1, \"variants\": [{\"modelUri\": \"/m\"}]}").contains("unknown field 'colour'"));
    assertTrue(refusal("{\"name\": \"e\", \"variants\": [{\"modelUri\": \"relative/m\"}]}").contains("must be absolute"));
  }

  @Test
  void stateFollowsCreationFailureAndBlueGreen() {
    EndpointConfig c1 = config("v1");
    EndpointConfig c2 = config("v2");
    EndpointState s = EndpointState.empty("e").apply(ev().setCreated(EndpointCreated.newBuilder().setConfig(c1)).build());
    assertEquals(EndpointState.Status.Creating, s.status());
    assertEquals(1, s.generation());
    EndpointState failed = s.apply(ev().setFailed(EndpointFailed.newBuilder().setGeneration(1).setReason("corrupt")).build());
    assertEquals(EndpointState.Status.Failed, failed.status());
    assertEquals("corrupt", failed.failureReason());

    EndpointReplica r1 = EndpointReplica.newBuilder().setVariant("a").setUrl("http://h:1").setGeneration(1).build();
    s = s.apply(ev().setReplicasReady(EndpointReplicasReady.newBuilder().setGeneration(1).addReplicas(r1)).build());
    assertEquals(EndpointState.Status.InService, s.status());
    assertEquals(c1, s.config());
    s = s.apply(ev().setUpdateStarted(EndpointUpdateStarted.newBuilder().setConfig(c2).setGeneration(2)).build());
    assertEquals(EndpointState.Status.Updating, s.status());
    assertEquals(c1, s.config(), "the old generation serves while the new one starts");
    EndpointState updateFailed = s.apply(ev().setFailed(EndpointFailed.newBuilder().setGeneration(2).setReason("oom")).build());
    assertEquals(EndpointState.Status.InService, updateFailed.status(), "a failed update keeps the old replicas serving");
    assertEquals(java.util.List.of(r1), updateFailed.replicas());
    assertEquals("oom", updateFailed.failureReason());
  }

  private static EndpointConfig config(String uri) {
    return EndpointConfig.newBuilder().addVariants(EndpointVariant.newBuilder().setName("a").setModelUri("file:/" + uri)
        .setWeight(1).setInstances(1).setMaxInstances(1)).build();
  }

  private static EndpointEvent.Builder ev() {
    return EndpointEvent.newBuilder().setEndpoint("e").setTimestampMs(1);
  }
}
