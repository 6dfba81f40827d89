package io.github.hzsidecar.shim;

import com.hazelcast.map.MapLoader;
import com.hazelcast.map.MapStoreFactory;

import java.util.Properties;

/**
 * The class a member's map-store configuration names ({@code factory-class-name}), so that one entry, e.g.
 * for the wildcard map name {@code "*"}, persists every map through the sidecar. Hazelcast then calls
 * {@link SidecarMapStore#init} with the map's name and properties.
 */
public class SidecarMapStoreFactory implements MapStoreFactory<Object, Object> {

    @Override
    public MapLoader<Object, Object> newMapStore(String mapName, Properties properties) {
        return new SidecarMapStore();
    }
}
