"""`gpt-tui bench`: how fast the engine runs on this machine, and why.

speed.py        prefill, decode, the machine's streaming bandwidth and the roofline it implies
speculative.py  speculative decoding against plain decoding: whole turns, and a verifying
                pass over n positions against one step
"""
