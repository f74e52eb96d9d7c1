"""The portal: Jifen's reference community app, server-rendered, on the public APIs only."""
