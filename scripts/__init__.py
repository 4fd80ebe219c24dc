"""Developer commands: the test runner and the throw-away servers it uses."""
