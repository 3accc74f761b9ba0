"""TFRecord schema, boxes, reading and the tf.data pipelines."""
