package io.kiln.coordinator.api;

import org.apache.pekko.http.javadsl.server.Route;

/**
 * A capability's slice of the REST API under {@code /api/v1} (tuning jobs, models, endpoints, ...).
 * {@link ApiRoutes} authenticates first and hands over the user, so an extension never sees an
 * unauthenticated request; errors use the shared JSON shape of {@link ApiJson}.
 */
public interface ApiExtension {
  /** Routes below {@code /api/v1}; {@code user} is the authenticated caller. */
  Route routes(String user);
}
