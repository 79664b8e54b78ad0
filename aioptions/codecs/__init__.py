"""G.711 and resampling: plain numpy, no Django. The lowest layer (aioptions), so both the offline
engines here and the media plane in telephony use one implementation without an arrow pointing up."""
