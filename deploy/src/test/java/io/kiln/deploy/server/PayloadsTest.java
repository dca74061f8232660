package io.kiln.deploy.server;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;

import java.nio.charset.StandardCharsets;
import org.junit.jupiter.api.Test;

/** The streaming fast path for JSON rows agrees with the tree parser, and leaves everything else to it. */
class PayloadsTest {
  private static byte[] b(String s) {
    return s.getBytes(StandardCharsets.UTF_8);
  }

  @Test
  void plainShapesParseAsTheTreeDoes() {
    String[] plain = {"{\"instances\": [[1, 2.5], [3, -4e2]]}", "[[1,2],[3,4]]", "[0.1, 0.2, 0.30000001192092896]",
        "{\"other\": {\"a\": [1]}, \"instances\": [[16777217, 9007199254740993, 1e40]]}", "[[]]",
        "{\"instances\": [7]} trailing"};
    for (String s : plain) {
      float[][] fast = Payloads.plainRows(b(s));
      assertNotNull(fast, s);
      // the same body through the tree parser (the fast path bypassed by a leading space object wrapper)
      float[][] tree = treeOnly(s);
      assertArrayEquals(tree, fast, s);
    }
  }

  @Test
  void everythingElseIsLeftToTheTreeParser() {
    String[] other = {"{\"instances\": [{\"features\": [1, 2]}]}", "[1, \"a\"]", "[]", "{oops", "{\"instances\": 3}",
        "{\"instances\": [[1]], \"instances\": [[2]]}", "[[1, [2]]]", "[[1], 2]", "{\"x\": 1}", "[123456789012345678901234567890]",
        "\"text\"", ""};
    for (String s : other) assertNull(Payloads.plainRows(b(s)), s);
  }

  /** Parses with the tree path only (what parseInvocation did before the fast path). */
  private static float[][] treeOnly(String s) {
    try {
      com.fasterxml.jackson.databind.JsonNode n = Payloads.JSON.readTree(b(s));
      com.fasterxml.jackson.databind.JsonNode rows = n.isObject() ? n.get("instances") : n;
      if (!rows.get(0).isArray()) return new float[][] {floats(rows)};
      float[][] out = new float[rows.size()][];
      for (int i = 0; i < out.length; i++) out[i] = floats(rows.get(i));
      return out;
    } catch (java.io.IOException e) {
      throw new AssertionError(e);
    }
  }

  private static float[] floats(com.fasterxml.jackson.databind.JsonNode r) {
    float[] v = new float[r.size()];
    for (int j = 0; j < v.length; j++) v[j] = r.get(j).floatValue();
    return v;
  }
}
