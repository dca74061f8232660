package io.kiln.coordinator.api;

import static org.junit.jupiter.api.Assertions.*;

import io.kiln.protocol.proto.JobSpec;
import org.junit.jupiter.api.Test;

class JobSpecsTest {
  @Test
  void acceptsAValidSpecAndFillsDefaults() throws Exception {
    JobSpec s = JobSpecs.parse("""
        {"name":"fashion-mlp","algorithm":"mlp","hyperparameters":{"epochs":1,"learning_rate":0.05,"hidden":"256,128"},
         "channels":{"train":"file:/usr/share/datasets/fashion-mnist"}}""");
    assertEquals("1", s.getHyperparametersOrThrow("epochs"));
    assertEquals("0.05", s.getHyperparametersOrThrow("learning_rate"));
    assertEquals(1, s.getResources().getWorkers());
    assertEquals(1, s.getResources().getCpusPerWorker());
    assertEquals("auto", s.getResources().getCollective());
  }

  @Test
  void namesEveryBadField() {
    InvalidSpecException e = assertThrows(InvalidSpecException.class, () -> JobSpecs.parse("""
        {"name":"Bad Name","algorithm":"resnet9000","hyperparameters":{"epochs":"zero","learning_rate":-1},
         "channels":{"train":"s3x://nowhere"},"resources":{"workers":100,"collective":"carrier-pigeon"}}"""));
    String all = String.join("\n", e.details());
    assertTrue(all.contains("name:"), all);
    assertTrue(all.contains("algorithm: unknown 'resnet9000'"), all);
    assertTrue(all.contains("hyperparameters.epochs: 'zero' is not an integer"), all);
    assertTrue(all.contains("hyperparameters.learning_rate"), all);
    assertTrue(all.contains("channels.train"), all);
    assertTrue(all.contains("resources.workers"), all);
    assertTrue(all.contains("resources.collective"), all);
    assertEquals(7, e.details().size(), all);
  }

  @Test
  void rejectsMalformedJsonUnknownFieldsAndMissingChannels() {
    assertTrue(assertThrows(InvalidSpecException.class, () -> JobSpecs.parse("{\"name\":")).getMessage().startsWith("malformed JSON"));
    InvalidSpecException unknown = assertThrows(InvalidSpecException.class,
        () -> JobSpecs.parse("{\"name\":\"a\",\"algorithm\":\"mlp\",\"colour\":\"red\"}"));
    assertTrue(unknown.details().get(0).contains("colour"), unknown.details().toString());
    InvalidSpecException noTrain = assertThrows(InvalidSpecException.class,
        () -> JobSpecs.parse("{\"name\":\"a\",\"algorithm\":\"mlp\"}"));
    assertEquals("channels.train: required (a directory path or file: URI)", noTrain.details().get(0));
    assertThrows(InvalidSpecException.class, () -> JobSpecs.parse("[1,2]"));
  }

  @Test
  void passesTheBuiltinsHyperparametersToTheWorker() throws Exception {
    // linear-learner and pca check their own names and ranges on the worker (docs/algorithms.md)
    JobSpec lin = JobSpecs.parse("""
        {"name":"lin","algorithm":"linear-learner","hyperparameters":{"predictor_type":"binary_classifier","epochs":3},
         "channels":{"train":"/data/train.csv"},"resources":{"workers":2}}""");
    assertEquals("binary_classifier", lin.getHyperparametersOrThrow("predictor_type"));
    JobSpec pca = JobSpecs.parse("""
        {"name":"pca","algorithm":"pca","hyperparameters":{"num_components":5,"algorithm_mode":"randomized"},
         "channels":{"train":"/data/train.csv"}}""");
    assertEquals("randomized", pca.getHyperparametersOrThrow("algorithm_mode"));
  }
}
