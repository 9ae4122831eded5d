"""Course-weights recipes, one module per lesson (see course_tools.train_weights)."""
