"""Text markers shared by LLMs (cloud or scripted) and the voice pipeline."""

# The model ends a reply with this to end the call; the pipeline strips it, speaks the rest, then
# sends BYE once the audio has played. Campaign prompts tell the model to use it.
HANGUP_MARKER = "[END_CALL]"
