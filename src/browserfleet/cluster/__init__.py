"""Where browsers run: the runner interface the session manager uses to get and give back browsers.

`LocalRunner` starts them as child processes of this server. A Ray runner (later) places them on
cluster nodes. Runners own placement; they must not decide session state.
"""
