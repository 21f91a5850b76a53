-- Runs once, when the postgres container initialises an empty data volume
-- (/docker-entrypoint-initdb.d). Each service owns its own database; no service
-- reads another's tables. Tables are created by each service's Alembic migrations
-- at container start, not here.
CREATE DATABASE intake;
CREATE DATABASE eligibility;
CREATE DATABASE payments;
CREATE DATABASE monitoring;
