"""The only room that imports SQLAlchemy: engine, tables, repositories, migrations.

Each service has its own module here (``identity``, ``image``, ``compute``…) holding
its tables and the repository the service calls; services never see SQLAlchemy.
"""
