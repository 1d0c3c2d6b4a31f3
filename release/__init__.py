"""Release tooling: the wheel's checks and the Claude Desktop bundle. Not part of the wheel (only atlas_mcp is)."""
