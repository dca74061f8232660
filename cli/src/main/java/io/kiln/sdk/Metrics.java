package io.kiln.sdk;

import java.util.Map;

final class Metrics {
    private Metrics() {
    }

    /** A metric as a double whether the server sent a number or a numeric string; null if absent. */
    static Double get(Map<String, Object> metrics, String name) {
        if (metrics == null) {
            return null;
        }
        Object v = metrics.get(name);
        if (v instanceof Number) {
            return ((Number) v).doubleValue();
        }
        if (v instanceof String) {
            try {
                return Double.parseDouble((String) v);
            } catch (NumberFormatException e) {
                return null;
            }
        }
        return null;
    }
}
