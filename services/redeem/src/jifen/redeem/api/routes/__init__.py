"""One APIRouter per resource of the redeem API, in the order the app includes them."""
