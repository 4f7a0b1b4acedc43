"""Test helpers shared by the test tiers and bench/: strategies, request builders."""
